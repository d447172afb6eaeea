"""Root pytest configuration: loads the fixture plugins, one module per concern.

- tests.plugins.cluster: the local control plane, S3 server, clients, fresh namespaces
- tests.plugins.crds: installs the generated CRDs into that cluster
- tests.plugins.operator: runs the operator as a real process against that cluster
"""

pytest_plugins = ["tests.plugins.cluster", "tests.plugins.crds", "tests.plugins.operator"]
