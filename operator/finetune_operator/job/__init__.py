"""The FineTuneJob controller: pure decisions (jobview, pods, failure_policy, builders, reconcile,
assembly, status, backoff, plan, progress) under the I/O of `controller` and the Kopf wiring of
`handlers`. See docs/architecture.md, "Where to find what"."""
