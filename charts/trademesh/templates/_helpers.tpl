{{- define "trademesh.labels" -}}
app.kubernetes.io/part-of: trademesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* azureKeyVault.secrets grouped by Kubernetes Secret: {secret: [{object, key}]}. */}}
{{- define "trademesh.keyVaultSecrets" -}}
{{- $grouped := dict -}}
{{- range .secrets -}}
{{- $_ := set $grouped .secret (append (get $grouped .secret | default list) (dict "object" .object "key" .key)) -}}
{{- end -}}
{{- toYaml $grouped -}}
{{- end -}}
