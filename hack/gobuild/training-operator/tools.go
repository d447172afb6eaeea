//go:build tools

// Package tools makes `go mod tidy` keep the training-operator main package's
// dependency graph in this module's go.sum.
package tools

import _ "github.com/kubeflow/training-operator/cmd/training-operator.v1"
