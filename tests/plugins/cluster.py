"""Fixtures: cluster (being written)."""
