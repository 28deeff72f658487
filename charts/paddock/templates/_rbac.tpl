{{/*
The RBAC rules of each component, shared by the cluster-wide (ClusterRole) and namespaced (Role per
watched namespace) modes. Least privilege: exact verbs and resources, never a wildcard. The chart
README explains every rule.
*/}}

{{- define "paddock.operator.rules" -}}
# The API: watch both kinds, write their status, and the few spec/lifecycle writes the operator owns:
# workspaces from a run's workspaceTemplate (create), resuming a suspended workspace (patch
# spec.lifecycle.suspend), shutdownTime (delete) and ttlSecondsAfterFinished (delete runs).
- apiGroups: ["paddock.dev"]
  resources: ["agentworkspaces"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["paddock.dev"]
  resources: ["agentruns"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["paddock.dev"]
  resources: ["agentworkspaces/status", "agentruns/status"]
  verbs: ["get", "patch"]
# Children carry blockOwnerDeletion: clusters with the OwnerReferencesPermissionEnforcement admission
# plugin require update on the owner's finalizers to set it.
- apiGroups: ["paddock.dev"]
  resources: ["agentworkspaces/finalizers", "agentruns/finalizers"]
  verbs: ["update"]
# Sandbox pods are created and replaced whole (a drifted pod is deleted and recreated).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Not used by the operator itself: Kubernetes lets a subject create a Role only with permissions it
# holds (RBAC escalation prevention), and each workspace's Role grants the harness exec into its pod.
# The alternative, the `escalate` verb, would let the operator write any Role at all.
- apiGroups: [""]
  resources: ["pods/exec"]
  verbs: ["create", "get"]
# The other children, converged with server-side apply (patch; create for the first apply).
- apiGroups: [""]
  resources: ["persistentvolumeclaims", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Cluster-wide mode only: kopf notices CRDs installed or changed after it started. Read-only. */}}
{{- define "paddock.operator.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}

{{- define "paddock.harness.rules" -}}
# Runs: watch them, write their status (progress, approvals, output) and annotations (approval
# answers are cleared once consumed).
- apiGroups: ["paddock.dev"]
  resources: ["agentruns"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["paddock.dev"]
  resources: ["agentruns/status"]
  verbs: ["get", "patch"]
# Workspaces: read them, and stamp status.lastActivityTime on every exec (idle suspension).
- apiGroups: ["paddock.dev"]
  resources: ["agentworkspaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["paddock.dev"]
  resources: ["agentworkspaces/status"]
  verbs: ["get", "patch"]
# A run's saved SDK state and transcript (owned by the run, out of the sandbox's reach).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "patch", "delete"]
# Per-run claims, so that two harness replicas never drive the same run (owned by the run: the
# garbage collector removes them with it).
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "patch"]
{{- if .Values.harness.runSecrets.enabled }}
# The Secrets runs name in spec.model.apiKeySecretRef: get only (no list, no watch).
- apiGroups: [""]
  resources: ["secrets"]
  {{- with .Values.harness.runSecrets.names }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: ["get"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
