{{/*
The permissions the operator uses, written once and bound either cluster-wide (ClusterRole) or per
watched namespace (Role). Keep them in sync with operator/finetune_operator: every verb here is one
the operator or Kopf calls; tests/integration/test_rbac_*.py runs the operator with only these.

Deliberately absent: Secrets (storage credentials reach the trainer as env from the Secret named in
the job; the operator never reads them), FineTuneJob update and patch (the operator writes only the
status subresource, never spec or metadata), pod create or delete (the Job controller owns pods).
*/}}

{{- define "finetune-operator.namespacedRules" -}}
# FineTuneJobs: watched through Kopf (event handlers only: no finalizers, no annotations), read
# before each reconcile, created by FineTuneSchedules, deleted when runPolicy.ttlSecondsAfterFinished
# has elapsed or a schedule's history limit is exceeded. Never updated or patched (spec is the user's).
- apiGroups: ["finetune.dev"]
  resources: ["finetunejobs"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
# (patch: only a FineTuneSweep's own trials, and only their runPolicy.suspend, when the sweep is
# suspended or resumed; a pruned trial is deleted.)
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
# Events on FineTuneJobs and FineTuneSchedules, posted by the operator after each status write.
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
