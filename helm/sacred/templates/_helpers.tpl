{{/* The release name is the prefix of every object: <release>-mongodb, <release>-omniboard. */}}
{{- define "sacred.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "sacred.labels" -}}
app.kubernetes.io/name: sacred
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vertex-edge
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "sacred.selectorLabels" -}}
app.kubernetes.io/name: sacred
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The Secret with the MongoDB credentials: never created by this chart, never in values. */}}
{{- define "sacred.secretName" -}}
{{- required "auth.existingSecret is required: the name of a Secret holding the MongoDB user and password (python edge.py setup --target gcp creates it from Secret Manager)" .Values.auth.existingSecret -}}
{{- end -}}

{{/* Omniboard's read-only MongoDB user: another existing Secret (never the root user's). */}}
{{- define "sacred.readerSecretName" -}}
{{- required "auth.reader.existingSecret is required: the name of a Secret holding Omniboard's read-only MongoDB user (python edge.py setup --target gcp creates the user and the Secret)" .Values.auth.reader.existingSecret -}}
{{- end -}}

{{- define "sacred.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sacred.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .readOnly }}
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}
