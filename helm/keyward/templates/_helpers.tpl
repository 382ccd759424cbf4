{{/*
Names, labels and the pieces the Deployment, the migration Job and the test
pod share.
*/}}

{{- define "keyward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release name, plus the chart name unless the release name already
contains it. Truncated to 63 characters (DNS label); suffixed objects
(-migrate, -test) stay within 63 too.
*/}}
{{- define "keyward.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "keyward.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels. The server's pods are selected by name, instance and component
"server", so the migration Job's pod (component "migration") and the test
pod (component "test") never count as server pods for the Service, the
PodDisruptionBudget, the HPA, the NetworkPolicy or topology spreading.
*/}}
{{- define "keyward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Labels of every object, without a component. */}}
{{- define "keyward.commonLabels" -}}
helm.sh/chart: {{ include "keyward.chart" . }}
app.kubernetes.io/name: {{ include "keyward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keyward
{{- end }}

{{/* Labels of the server's objects. */}}
{{- define "keyward.labels" -}}
{{ include "keyward.commonLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "keyward.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keyward.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "keyward.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret the pods read the URLs from: the team's own, or the chart's. */}}
{{- define "keyward.secretName" -}}
{{- default (include "keyward.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
The Secret the migration hook reads: the team's own (it exists before the
install), or the chart's hook copy (see templates/migrate-secret.yaml).
*/}}
{{- define "keyward.migrationSecretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- printf "%s-migrate" (include "keyward.fullname" .) }}
{{- end }}
{{- end }}

{{/* Fixed container ports; the Service maps its own ports onto them. */}}
{{- define "keyward.grpcPort" -}}50051{{- end }}
{{- define "keyward.metricsPort" -}}9090{{- end }}

{{- define "keyward.terminationGracePeriodSeconds" -}}
{{- add (int64 .Values.preStopSleepSeconds) (int64 .Values.drainTimeoutSeconds) 5 }}
{{- end }}

{{/*
Checks that JSON schema cannot express. The database check runs only for a
real install, upgrade or `helm template` (where .Release.IsInstall or
.Release.IsUpgrade is true), so that `helm lint` of the default values stays
clean while an install without a database fails at once with this message.
*/}}
{{- define "keyward.validate" -}}
{{- if and (or .Release.IsInstall .Release.IsUpgrade) (not .Values.database.url) (not .Values.existingSecret) }}
{{- fail "\n\nkeyward needs a database: set database.url (postgres://user:password@host:5432/db) or existingSecret (a Secret with the key database-url). See the chart's README." }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "\n\nserviceMonitor.enabled needs metrics.enabled: the ServiceMonitor scrapes the metrics port." }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "\n\ntls.enabled needs tls.secretName: a Secret of type kubernetes.io/tls with tls.crt and tls.key." }}
{{- end }}
{{- if and .Values.tls.clientCA.enabled (not .Values.tls.enabled) }}
{{- fail "\n\ntls.clientCA.enabled needs tls.enabled." }}
{{- end }}
{{- if and .Values.redis.tls.clientCert (not .Values.redis.tls.secretName) }}
{{- fail "\n\nredis.tls.clientCert needs redis.tls.secretName: a Secret with ca.crt, tls.crt and tls.key." }}
{{- end }}
{{- if and .Values.database.tls.clientCert (not .Values.database.tls.secretName) }}
{{- fail "\n\ndatabase.tls.clientCert needs database.tls.secretName: a Secret with ca.crt, tls.crt and tls.key." }}
{{- end }}
{{- if and .Values.leakReports.secretName .Values.leakReports.configMapName }}
{{- fail "\n\nleakReports: set secretName or configMapName, not both." }}
{{- end }}
{{- end }}

{{/*
One probe handler. Native gRPC probes (grpc.health.v1) cannot do TLS, so with
TLS on they fall back to a TCP check of the gRPC port.
Call with (dict "root" $ "service" "<grpc health service name>").
*/}}
{{- define "keyward.probeHandler" -}}
{{- if .root.Values.tls.enabled }}
tcpSocket:
  port: grpc
{{- else }}
grpc:
  port: {{ include "keyward.grpcPort" .root }}
  service: {{ .service | quote }}
{{- end }}
{{- end }}

{{/* Where the TLS Secret is mounted (a directory, so renewals show up). */}}
{{- define "keyward.tlsDir" -}}/etc/keyward/tls{{- end }}
{{/* Where the Postgres TLS Secret (database.tls.secretName) is mounted. */}}
{{- define "keyward.postgresTlsDir" -}}/etc/keyward/postgres-tls{{- end }}
{{/* TLS to Postgres, for every container that connects (keyward, the migration). */}}
{{- define "keyward.postgresTlsEnv" -}}
{{- with .Values.database.tls }}
{{- if .mode }}
- name: KEYWARD_DATABASE_SSL_MODE
  value: {{ .mode | quote }}
{{- end }}
{{- if .secretName }}
- name: KEYWARD_DATABASE_SSL_ROOT_CERT
  value: "{{ include "keyward.postgresTlsDir" $ }}/ca.crt"
{{- if .clientCert }}
- name: KEYWARD_DATABASE_SSL_CERT
  value: "{{ include "keyward.postgresTlsDir" $ }}/tls.crt"
- name: KEYWARD_DATABASE_SSL_KEY
  value: "{{ include "keyward.postgresTlsDir" $ }}/tls.key"
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- define "keyward.postgresTlsMount" -}}
{{- if .Values.database.tls.secretName }}
- name: postgres-tls
  mountPath: {{ include "keyward.postgresTlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}
{{- define "keyward.postgresTlsVolume" -}}
{{- with .Values.database.tls }}
{{- if .secretName }}
- name: postgres-tls
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end }}
{{/* Where the Redis TLS Secret (redis.tls.secretName) and password Secret are mounted. */}}
{{- define "keyward.redisTlsDir" -}}/etc/keyward/redis-tls{{- end }}
{{- define "keyward.redisAuthDir" -}}/etc/keyward/redis-auth{{- end }}
{{/* Redis ACL user, password file and TLS files (keyward only; the migration needs no Redis). */}}
{{- define "keyward.redisAccessEnv" -}}
{{- with .Values.redis }}
{{- if .username }}
- name: KEYWARD_REDIS_USERNAME
  value: {{ .username | quote }}
{{- end }}
{{- if .passwordSecret.name }}
- name: KEYWARD_REDIS_PASSWORD_FILE
  value: "{{ include "keyward.redisAuthDir" $ }}/{{ .passwordSecret.key }}"
{{- end }}
{{- if .tls.secretName }}
- name: KEYWARD_REDIS_TLS_CA
  value: "{{ include "keyward.redisTlsDir" $ }}/ca.crt"
{{- if .tls.clientCert }}
- name: KEYWARD_REDIS_TLS_CERT
  value: "{{ include "keyward.redisTlsDir" $ }}/tls.crt"
- name: KEYWARD_REDIS_TLS_KEY
  value: "{{ include "keyward.redisTlsDir" $ }}/tls.key"
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- define "keyward.redisAccessMounts" -}}
{{- if .Values.redis.tls.secretName }}
- name: redis-tls
  mountPath: {{ include "keyward.redisTlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.redis.passwordSecret.name }}
- name: redis-auth
  mountPath: {{ include "keyward.redisAuthDir" . }}
  readOnly: true
{{- end }}
{{- end }}
{{- define "keyward.redisAccessVolumes" -}}
{{- with .Values.redis }}
{{- if .tls.secretName }}
- name: redis-tls
  secret:
    secretName: {{ .tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .passwordSecret.name }}
- name: redis-auth
  secret:
    secretName: {{ .passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ .passwordSecret.key }}
        path: {{ .passwordSecret.key }}
{{- end }}
{{- end }}
{{- end }}
{{- define "keyward.configDir" -}}/etc/keyward/config{{- end }}
{{/* Where the leak-report keys file is mounted (leakReports). */}}
{{- define "keyward.leakReportsDir" -}}/etc/keyward/leak-reports{{- end }}
{{/* Where the Secret with the URLs is mounted (files database-url, redis-url). */}}
{{- define "keyward.secretsDir" -}}/etc/keyward/secrets{{- end }}

{{/*
Whether keyward uses Redis: the chart's Secret has redis-url when redis.url is
set; a team's existingSecret says so with redis.inExistingSecret (keyward
reads the URL from a file, and a missing file is an error, not "off").
Empty string for no.
*/}}
{{- define "keyward.redisEnabled" -}}
{{- if .Values.existingSecret }}
{{- if .Values.redis.inExistingSecret }}true{{ end }}
{{- else if .Values.redis.url }}true
{{- end }}
{{- end }}
