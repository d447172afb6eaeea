"""Benchmarks (`make bench`): operator scale, trainer overhead and recovery, each against its floor.

Why a package: the runnable scripts share small pure helpers (percentiles, ratios, Prometheus text
parsing, tables) that unit tests import as ``bench.<module>``. The scripts add the repository root to
``sys.path`` themselves, so ``python bench/<script>.py`` works without installing anything.
"""
