"""The FineTuneJob operator: turns a FineTuneJob into a gang of trainer pods and keeps its status true.

Layers, from the bottom up (each imports only the ones below it):

- pure logic over plain dicts: ``settings``, ``naming``, ``jobview``, ``builders``, ``failure_policy``,
  ``backoff``, ``conditions``, ``status``, ``plan``, ``assembly`` (status and Events of a pass),
  ``reconcile``
- I/O: ``kube`` (async Kubernetes API calls), ``metrics``, ``logs``, ``workqueue``
- wiring: ``workers`` (the worker tasks draining a work queue, with error backoff; shared with
  ``schedule``), ``controller`` (one reconcile pass: observe, decide, act, write status, emit events),
  ``handlers`` (Kopf watches feeding the work queue), ``__main__`` (command line)
"""
