"""Fixtures: crds (being written)."""
