{{/*
The permissions the operator uses, written once and bound either cluster-wide (ClusterRole) or per
watched namespace (Role). Keep them in sync with operator/finetune_operator: every verb here is one
the operator or Kopf calls; tests/integration/test_rbac_*.py runs the operator with only these.

Deliberately absent: Secrets (storage credentials reach the trainer as env from the Secret named in
the job; the operator never reads them), FineTuneJob update (the operator writes status and Kopf's
annotations with patch, never the spec), pod create (the Job controller creates the pods).
*/}}

{{- define "finetune-operator.namespacedRules" -}}
# FineTuneJobs: watched by Kopf; patched for Kopf's progress annotations only (never spec).
- apiGroups: ["finetune.dev"]
  resources: ["finetunejobs"]
  verbs: ["get", "list", "watch", "patch"]
# The operator's one status write per reconcile pass.
- apiGroups: ["finetune.dev"]
  resources: ["finetunejobs/status"]
  verbs: ["get", "patch"]
# One Indexed Job per attempt; replaced as a whole on a gang restart; suspend toggled for spec.runPolicy.suspend.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The headless Service that gives rank 0 its stable DNS name.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Pods are read for IPs, exit codes and termination messages (progress is pulled from rank 0's IP).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Events on FineTuneJobs (Kopf posts core/v1 Events).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{- define "finetune-operator.peeringRule" -}}
# Kopf peering: one active operator replica. Patch only the chart's own peering object.
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
{{- end }}
