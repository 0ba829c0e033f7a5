{{/* The service's name: the alias the umbrella chart gives this chart (the service's name). */}}
{{- define "svc.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "svc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "svc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "svc.labels" -}}
{{ include "svc.selectorLabels" . }}
app.kubernetes.io/part-of: trademesh
app.kubernetes.io/component: service
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "trademesh-service-%s" .Chart.Version }}
{{- end -}}

{{- define "svc.image" -}}
{{- $tag := .Values.image.tag | default .Values.global.image.tag | default .Chart.AppVersion -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The environment variable naming a service's base URL: TRADEMESH_<NAME>_URL. */}}
{{- define "svc.urlVar" -}}
{{- printf "TRADEMESH_%s_URL" (. | upper | replace "-" "_") -}}
{{- end -}}

{{/* TRADEMESH_TRUSTED_PROXIES: the service's own trustedProxies when set (a list, [] trusting
nobody), else global.trustedProxies; comma-separated, empty when nobody is trusted. */}}
{{- define "svc.trustedProxies" -}}
{{- $proxies := .Values.global.trustedProxies -}}
{{- if kindIs "slice" .Values.trustedProxies }}{{ $proxies = .Values.trustedProxies }}{{ end -}}
{{- join "," $proxies -}}
{{- end -}}

{{/* The Service port Prometheus scrapes: `metrics` when /metrics has a port of its own. */}}
{{- define "svc.metricsPortName" -}}
{{- if .Values.metrics.port }}metrics{{ else }}http{{ end -}}
{{- end -}}

{{- define "svc.serviceMonitorEnabled" -}}
{{- if kindIs "bool" .Values.serviceMonitor.enabled -}}{{ .Values.serviceMonitor.enabled }}{{- else -}}{{ .Values.global.serviceMonitor.enabled }}{{- end -}}
{{- end -}}

{{- define "svc.networkPolicyEnabled" -}}
{{- if kindIs "bool" .Values.networkPolicy.enabled -}}{{ .Values.networkPolicy.enabled }}{{- else -}}{{ .Values.global.networkPolicy.enabled }}{{- end -}}
{{- end -}}
