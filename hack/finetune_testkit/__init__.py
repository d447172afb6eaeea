"""Helpers that the tests and the benchmarks share: tiny models and data, trainer gangs, a private S3.

Why a package of its own under hack/: `bench/` must not import from `tests/`, and these helpers are
used by both. It ships in the dev-only distribution (hack/pyproject.toml) with `localcluster`, never
in the project's wheel or an image.
"""
