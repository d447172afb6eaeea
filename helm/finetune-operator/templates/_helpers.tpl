{{/*
Names and labels shared by every template.
*/}}

{{- define "finetune-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "finetune-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "finetune-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "finetune-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "finetune-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "finetune-operator.labels" -}}
helm.sh/chart: {{ include "finetune-operator.chart" . }}
{{ include "finetune-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "finetune-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "finetune-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "finetune-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The trainer pods' labels as the operator sets them (finetune_operator.naming.child_labels).
*/}}
{{- define "finetune-operator.trainerSelector" -}}
app.kubernetes.io/managed-by: finetune-operator
app.kubernetes.io/name: finetune-trainer
{{- end }}

{{/*
Fail early on value combinations that cannot work, naming the value to change.
*/}}
{{- define "finetune-operator.validate" -}}
{{- if and (eq .Values.rbac.scope "namespaced") (empty .Values.operator.watchNamespaces) }}
{{- fail "rbac.scope=namespaced needs operator.watchNamespaces: list the namespaces whose FineTuneJobs the operator may manage (or set rbac.scope=cluster)" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (empty (include "finetune-operator.networkPolicyNamespaces" .)) }}
{{- fail "networkPolicy.enabled=true needs networkPolicy.namespaces or operator.watchNamespaces: NetworkPolicies are per namespace, list the namespaces where trainers run" }}
{{- end }}
{{- if and .Values.storageSecret.create (empty .Values.storageSecret.namespaces) (empty .Values.storageSecret.perNamespace) }}
{{- fail "storageSecret.create=true needs storageSecret.perNamespace (one key per namespace) or storageSecret.namespaces: list the namespaces where jobs reference the Secret" }}
{{- end }}
{{- if and .Values.storageSecret.create (gt (len .Values.storageSecret.namespaces) 1) (not .Values.storageSecret.shared) }}
{{- fail "storageSecret.namespaces lists more than one namespace for one key: every tenant could read and overwrite the others' data. Give each namespace its own key in storageSecret.perNamespace, or set storageSecret.shared=true" }}
{{- end }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail "replicaCount must be 0 or 1: the operator runs one active replica (Recreate strategy, Kopf peering)" }}
{{- end }}
{{- end }}

{{- define "finetune-operator.networkPolicyNamespaces" -}}
{{- join "," (default .Values.operator.watchNamespaces .Values.networkPolicy.namespaces) }}
{{- end }}

{{- define "finetune-operator.storageSecretNamespaces" -}}
{{- join "," .Values.storageSecret.namespaces }}
{{- end }}

{{/*
Kopf's peering kind follows the watch scope, not the RBAC scope: watching every namespace uses a
cluster-scoped ClusterKopfPeering, a list of namespaces uses a KopfPeering in each.
*/}}
{{- define "finetune-operator.peeringArgs" -}}
resource: {{ ternary "clusterkopfpeerings" "kopfpeerings" (empty .Values.operator.watchNamespaces) }}
name: {{ .Values.operator.peeringName | quote }}
{{- end }}
