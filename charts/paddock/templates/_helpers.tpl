{{/* Names, labels and the checks that JSON Schema cannot express. */}}

{{- define "paddock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object-name prefix; <= 54 characters so that "-operator"/"-harness" suffixes fit in 63. */}}
{{- define "paddock.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "paddock.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "paddock.labels" -}}
helm.sh/chart: {{ include "paddock.chart" . }}
app.kubernetes.io/name: {{ include "paddock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: paddock
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component; call with (dict "root" $ "component" "operator"). */}}
{{- define "paddock.componentLabels" -}}
{{ include "paddock.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component: stable across upgrades (no version). */}}
{{- define "paddock.selectorLabels" -}}
app.kubernetes.io/name: {{ include "paddock.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "paddock.operator.fullname" -}}
{{- printf "%s-operator" (include "paddock.fullname" .) }}
{{- end }}

{{- define "paddock.harness.fullname" -}}
{{- printf "%s-harness" (include "paddock.fullname" .) }}
{{- end }}

{{/* A Service name is a DNS label (<= 63): shorten the prefix, never the component, so that the
two Services can never get the same name. */}}
{{- define "paddock.metricsServiceName" -}}
{{- printf "%s-%s-metrics" (include "paddock.fullname" .root | trunc 46 | trimSuffix "-") .component }}
{{- end }}

{{- define "paddock.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "paddock.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "paddock.harness.serviceAccountName" -}}
{{- if .Values.harness.serviceAccount.create }}
{{- default (include "paddock.harness.fullname" .) .Values.harness.serviceAccount.name }}
{{- else }}
{{- required "harness.serviceAccount.name is required when harness.serviceAccount.create is false" .Values.harness.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The leader-election Lease: one per release, in the release namespace. */}}
{{- define "paddock.leaseName" -}}
{{- include "paddock.operator.fullname" . }}
{{- end }}

{{- define "paddock.image" -}}
{{- $repo := required "image.repository is required" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the Secret with the default model key, and whether there is one at all. */}}
{{- define "paddock.modelSecretName" -}}
{{- if .Values.harness.openai.existingSecret }}
{{- .Values.harness.openai.existingSecret }}
{{- else if .Values.harness.openai.apiKey }}
{{- printf "%s-openai" (include "paddock.harness.fullname" .) }}
{{- end }}
{{- end }}

{{/* Cross-field rules that values.schema.json cannot state clearly; included by every workload. */}}
{{- define "paddock.validate" -}}
{{- if and .Values.harness.openai.apiKey .Values.harness.openai.existingSecret }}
{{- fail "set at most one of harness.openai.apiKey and harness.openai.existingSecret" }}
{{- end }}
{{- if and (gt (int .Values.operator.replicaCount) 1) (not .Values.operator.leaderElection.enabled) }}
{{- fail "operator.replicaCount > 1 needs operator.leaderElection.enabled: true (replicas would reconcile at the same time)" }}
{{- end }}
{{- if and .Values.rbac.create (not .Values.harness.serviceAccount.create) (not .Values.harness.serviceAccount.name) }}
{{- fail "harness.serviceAccount.name is required when harness.serviceAccount.create is false" }}
{{- end }}
{{- end }}

{{/* Volumes and mounts shared by both workloads: the read-only root needs a writable /tmp. */}}
{{- define "paddock.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{- define "paddock.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Environment shared by both: a writable HOME, no byte-code writes on the read-only root. */}}
{{- define "paddock.commonEnv" -}}
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with .Values.watchNamespaces }}
- name: PADDOCK_NAMESPACES
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
