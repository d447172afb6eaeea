"""Fixtures: operator (being written)."""
