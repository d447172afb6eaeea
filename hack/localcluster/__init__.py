"""The local real Kubernetes cluster used by tests, benchmarks and `make demo`.

Why this exists: the project is proven against real parts (docs/architecture.md "Tested on real
parts"). The control plane
(etcd, kube-apiserver, kube-controller-manager, kube-scheduler) is built from Go modules and run
as plain processes on loopback, simulated GPU nodes come from KWOK, pods that must really run go
to the process node, and object storage is a real SeaweedFS S3 server. Everything binds
127.0.0.1 (docs/architecture.md "Loopback only").

Entry points: ``python -m localcluster up|down|status|build`` and the pytest plugin
``tests/plugins/cluster.py``; both call :mod:`localcluster.cluster`.
"""
