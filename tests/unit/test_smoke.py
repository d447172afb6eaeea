"""The test tree is importable and the root conftest loads its plugins."""


def test_plugins_load() -> None:
    import tests.plugins.cluster  # noqa: F401
