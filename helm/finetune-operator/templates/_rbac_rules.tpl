{{/*
The permissions the operator uses, written once and bound either cluster-wide (ClusterRole) or per
watched namespace (Role). Keep them in sync with operator/finetune_operator: every verb here is one
the operator or Kopf calls; tests/integration/test_rbac_*.py runs the operator with only these.

Deliberately absent: Secrets (storage credentials reach the trainer as env from the Secret named in
the job; the operator never reads them), FineTuneJob update and any write to FineTuneSchedules or
FineTuneSweeps but their status (spec and metadata are the user's), pod create or delete (the Job
controller owns pods). The one spec write is a merge patch of a sweep trial's runPolicy.suspend (see
the finetunejobs rule); RBAC cannot narrow a verb to one field, so the chart says what is patched.
*/}}

{{- define "finetune-operator.namespacedRules" -}}
# FineTuneJobs: watched through Kopf (event handlers only: no finalizers, no annotations), read
# before each reconcile, created by FineTuneSchedules and FineTuneSweeps (their trials), deleted when
# runPolicy.ttlSecondsAfterFinished has elapsed, a schedule's history limit is exceeded or a sweep
# prunes a trial. Never updated. Patched in one case only: the sweep controller sets
# spec.runPolicy.suspend of the trials a FineTuneSweep owns (merge patch of that one field) when the
# sweep's spec.suspend changes, so its running trials stop with a checkpoint and resume later
# (operator/finetune_operator/sweep/api.py, set_trial_suspended). A job's spec is otherwise the user's.
- apiGroups: ["finetune.dev"]
  resources: ["finetunejobs"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# FineTuneSchedules and FineTuneSweeps: watched through Kopf, read before each pass; they are never
# written but status.
- apiGroups: ["finetune.dev"]
  resources: ["finetuneschedules", "finetunesweeps"]
  verbs: ["get", "list", "watch"]
# The operator's one status write per reconcile pass (merge patch of the status subresource).
- apiGroups: ["finetune.dev"]
  resources: ["finetunejobs/status", "finetuneschedules/status", "finetunesweeps/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion; clusters that enable the
# OwnerReferencesPermissionEnforcement admission plugin require this to create them.
- apiGroups: ["finetune.dev"]
  resources: ["finetunejobs/finalizers", "finetuneschedules/finalizers", "finetunesweeps/finalizers"]
  verbs: ["update"]
# One Indexed Job per attempt, listed and watched with the managed-by label selector (the child
# cache); deleted as a whole on a gang restart or suspension.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
# The trainer's spec as a file (one ConfigMap per FineTuneJob, owned by it): created before the first
# attempt, read back when one of that name already exists (to check it is the job's own), deleted when
# the job finishes; listed and watched only with the managed-by label selector (the child cache).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "delete"]
# The headless Service that gives rank 0 its stable DNS name (garbage-collected with the job);
# listed and watched with the managed-by label selector (the child cache), recreated if deleted.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create"]
# Worker pods are watched for phases, exit codes and termination messages; progress is then pulled
# from rank 0's metrics port over HTTP (no Kubernetes API call).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Events on FineTuneJobs, FineTuneSchedules and FineTuneSweeps, posted after each status write.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Kueue's Workload of a queued attempt Job, listed by Kueue's job-uid label, so the FineTuneJob's
# Suspended condition carries Kueue's own reason (quota short, preempted). Read-only; harmless
# without Kueue (the operator then keeps the Job's words).
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["list"]
{{- end }}

{{- define "finetune-operator.peeringRule" -}}
# Kopf peering: one active operator replica. Read and patch only the chart's own peering object.
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  resourceNames: [{{ .name | quote }}]
  verbs: ["get", "patch"]
{{- end }}

{{- define "finetune-operator.discoveryRule" -}}
# Kopf notices CRDs being installed or removed (read-only; never modifies them).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# With a list of namespaces Kopf follows them being created and deleted (names only; no access to
# anything inside). Without it Kopf retries for ~20 s with errors at every start, then falls back.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
