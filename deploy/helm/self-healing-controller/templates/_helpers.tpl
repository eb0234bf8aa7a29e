{{/* Chart name, for labels. */}}
{{- define "self-healing-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: the release name when it already contains the chart name. */}}
{{- define "self-healing-controller.fullname" -}}
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

{{- define "self-healing-controller.namespace" -}}
{{- default .Release.Namespace .Values.namespace.name }}
{{- end }}

{{/* Selector labels: immutable once installed, so nothing here may depend on the chart version. */}}
{{- define "self-healing-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "self-healing-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "self-healing-controller.labels" -}}
{{ include "self-healing-controller.selectorLabels" . }}
app.kubernetes.io/part-of: self-healing-controller
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "self-healing-controller.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The value a service option has in the pod: .Values.config.<key> when set, else the service
default from the option table (templates/_options.tpl). For the few settings other objects must
agree with (the port, the Lease name). Call with (list $ "key").
*/}}
{{- define "self-healing-controller.setting" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $value := index $root.Values.config $key }}
{{- if kindIs "invalid" $value }}
{{- range include "self-healing-controller.options" $root | fromYamlArray }}
{{- if eq .key $key }}{{ .default }}{{ end }}
{{- end }}
{{- else }}
{{- $value }}
{{- end }}
{{- end }}

{{- define "self-healing-controller.port" -}}
{{- include "self-healing-controller.setting" (list . "port") | int }}
{{- end }}

{{/* The webhook Secret: the one given, or the one the chart generates. */}}
{{- define "self-healing-controller.webhookSecret" -}}
{{- default (printf "%s-webhook" (include "self-healing-controller.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{/*
The tokens that come from Secrets, as a YAML list of {name, env, secret, key}: every token option
whose Secret is set, and the webhook one always (generated when not given).
*/}}
{{- define "self-healing-controller.mountedTokens" -}}
{{- $root := . }}
{{- range include "self-healing-controller.tokens" . | fromYamlArray }}
{{- $values := index $root.Values .name }}
{{- $secret := $values.existingSecret }}
{{- if eq .name "webhook" }}{{ $secret = include "self-healing-controller.webhookSecret" $root }}{{ end }}
{{- if $secret }}
- {{ dict "name" .name "env" .env "secret" $secret "key" $values.key | toJson }}
{{- end }}
{{- end }}
{{- end }}

{{/* The generated RBAC rules (files/rbac.yaml, copied from deploy/). */}}
{{- define "self-healing-controller.rbac" -}}
{{- .Files.Get "files/rbac.yaml" }}
{{- end }}
