"""FineTuneSchedule: FineTuneJobs created on a cron schedule, with Kubernetes CronJob semantics.

Layers, from the bottom up (each imports only the ones below it):

- pure logic: ``cron_times`` (when an expression fires in a time zone), ``timing`` (which run is
  due: missed runs, catch-up, deadline), ``children`` (the schedule's jobs: state, history, active),
  ``child_job`` (the FineTuneJob of one run), ``plan`` (one reconcile pass)
- I/O: ``clock`` (the system clock or, for tests, a clock file)
- wiring: ``handlers`` (Kopf timer and child watch, API calls, status write, events)

The models and the CRD live in ``finetune_api.schedule*``; user documentation in docs/schedules.md.
"""
