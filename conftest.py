"""Root pytest configuration: loads the fixture plugins, one module per concern.

- tests.plugins.cluster: the local control plane, S3 server, clients, fresh namespaces
- tests.plugins.crds: installs the generated CRDs into that cluster
- tests.plugins.operator: runs the operator as a real process against that cluster
- tests.plugins.helm: the helm CLI (built from its Go module) for the chart's tests
- tests.plugins.kueue: the real Kueue controller and a queue of its own per test
"""

pytest_plugins = [
    "tests.plugins.cluster",
    "tests.plugins.crds",
    "tests.plugins.operator",
    "tests.plugins.helm",
    "tests.plugins.kueue",
]
