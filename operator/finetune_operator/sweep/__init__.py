"""FineTuneSweep: hyperparameter search whose trials are FineTuneJobs, driven by Optuna.

Layers, from the bottom up (each imports only the ones below it):

- pure logic: ``space`` (parameters -> Optuna distributions, grid, trial specs), ``trial_job`` (the
  FineTuneJob of one trial), ``observe`` (a trial's state and evaluations from its status),
  ``study`` (the Optuna study rebuilt from status: next suggestion, pruning decision),
  ``plan`` (one reconcile pass)
- I/O and wiring: ``api`` (Kubernetes calls), ``metrics``, ``controller`` (work queue, one pass:
  observe, plan, write status, act, events), ``handlers`` (Kopf watches)

The models and the CRD live in ``finetune_api.sweep*``; user documentation in docs/sweeps.md.
"""
