{{/* Names, labels and the values derived from the chosen backend. */}}

{{- define "snapback.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "snapback.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "snapback.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "snapback.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "snapback.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "snapback.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: snapback
{{- end }}

{{- define "snapback.selectorLabels" -}}
app.kubernetes.io/name: {{ include "snapback.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "snapback.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "snapback.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "snapback.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The CSI driver name the chosen backend serves. */}}
{{- define "snapback.driverName" -}}
{{- if eq .Values.driver.backend "alicloud" }}diskplugin.csi.alibabacloud.com
{{- else if eq .Values.driver.backend "local" }}local.snapback.dev
{{- end }}
{{- end }}

{{/*
"true" when the controller process calls a CSI driver (the embedded snapshotter or
provisioner is on and a backend is deployed).
*/}}
{{- define "snapback.usesCSI" -}}
{{- if and (ne .Values.driver.backend "none") (or .Values.controller.snapshotter .Values.controller.provisioner) }}true{{ end }}
{{- end }}

{{/* Where the local driver's socket lives on the node; kubelet dials it there too. */}}
{{- define "snapback.localPluginDir" -}}
{{- printf "%s/plugins/%s" (trimSuffix "/" .Values.driver.local.kubeletDir) (include "snapback.driverName" .) }}
{{- end }}

{{- define "snapback.leaseName" -}}
{{- default (printf "%s-controller" (include "snapback.fullname" .)) .Values.controller.leaderElection.leaseName }}
{{- end }}

{{- define "snapback.snapshotClassName" -}}
{{- default (printf "snapback-%s" .Values.driver.backend) .Values.volumeSnapshotClass.name }}
{{- end }}

{{- define "snapback.storageClassName" -}}
{{- default (printf "snapback-%s" .Values.driver.backend) .Values.storageClass.name }}
{{- end }}

{{/* A Prometheus duration (e.g. 26h, 90m, 1d) in seconds. */}}
{{- define "snapback.durationSeconds" -}}
{{- $match := regexFind "^[0-9]+" . }}
{{- $unit := trimPrefix $match . }}
{{- $factor := get (dict "s" 1 "m" 60 "h" 3600 "d" 86400 "w" 604800) $unit }}
{{- mul (int $match) $factor }}
{{- end }}
