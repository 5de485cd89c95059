{{/*
The chart name, shortened to fit a Kubernetes name.
*/}}
{{- define "keelson.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name prefix of every object: <release>-<chart>, or the release name alone when it
already contains the chart name.
*/}}
{{- define "keelson.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "keelson.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object of the release.
*/}}
{{- define "keelson.labels" -}}
helm.sh/chart: {{ include "keelson.chart" . }}
{{ include "keelson.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keelson
{{- end }}

{{/*
Labels that select the operator pods. They never change across upgrades.
*/}}
{{- define "keelson.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keelson.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "keelson.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keelson.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image reference: repository:tag, or repository@digest when a digest is set.
*/}}
{{- define "keelson.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs on Applications and on the children it creates, wherever it
watches. The lease rule lives apart (leader-election-rbac.yaml): it is granted only in the
release namespace. Keep in step with `keelson rbac`; charts/tests checks both.
*/}}
{{- define "keelson.watchRules" -}}
- apiGroups: ["keelson.dev"]
  resources: ["applications"]
  verbs: ["list", "watch"]
- apiGroups: ["keelson.dev"]
  resources: ["applications/status"]
  verbs: ["patch"]
# Database credentials: created once, never patched. Every child kind is listed and watched
# twice (Keelson's objects, and the others' metadata to tell who controls a name before the
# first write): no child is read by name, except a StatefulSet about to be replaced.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "delete", "list", "watch"]
# A database's volume claim: read when its credentials Secret is missing, patched to grow it.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "delete", "list", "patch", "watch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "delete", "list", "patch", "watch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["create", "delete", "get", "list", "patch", "watch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["create", "delete", "list", "patch", "watch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "delete", "list", "patch", "watch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["create", "delete", "list", "patch", "watch"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["create", "delete", "list", "patch", "watch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["create", "delete", "list", "patch", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# Pods: listed by a workload's selector while it is not ready, to say why; never watched.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
{{- end }}
