{{/* Chart name, truncated to a DNS label. */}}
{{- define "llm-twin.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Common labels on every object of this chart. */}}
{{- define "llm-twin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "llm-twin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-twin
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include "llm-twin.selectorLabels" (list . "mongodb") */}}
{{- define "llm-twin.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "llm-twin.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Namespace of the DAG task pods (and of the objects they reference). */}}
{{- define "llm-twin.taskNamespace" -}}
{{- default .Release.Namespace .Values.tasks.namespace -}}
{{- end -}}

{{/* Full image reference of a runtime: include "llm-twin.image" (list . "core") */}}
{{- define "llm-twin.image" -}}
{{- $root := index . 0 -}}
{{- $name := index $root.Values.images (index . 1) -}}
{{- printf "%s/%s:%s" $root.Values.images.registry $name $root.Values.images.tag -}}
{{- end -}}

{{/* The objects this chart names after the release, as [kind, suffix, longest name Kubernetes takes]
(JSON). A StatefulSet's name has 52 characters at most: its pods get the label controller-revision-hash
= <name>-<10-character hash>, and a label value has 63. A Service's and a Job's name is a DNS label (63;
a Job's name is also its pods' job-name label). Helm itself allows release names of 53 characters. */}}
{{- define "llm-twin.releaseNamedObjects" -}}
{{- $objects := list -}}
{{- if .Values.artifacts.devObjectStore.enabled -}}
{{- $objects = append $objects (list "StatefulSet" "object-store" 52) -}}
{{- $objects = append $objects (list "Job" "create-bucket" 63) -}}
{{- end -}}
{{- if eq .Values.mongodb.mode "embedded" -}}
{{- $objects = append $objects (list "StatefulSet" "mongodb" 52) -}}
{{- end -}}
{{- toJson $objects -}}
{{- end -}}

{{/* Fails, naming the object and the longest release name that fits, when the release name is too long
for one of the objects above (Kubernetes would refuse it, or its pods, after `helm install` began). */}}
{{- define "llm-twin.checkReleaseName" -}}
{{- $fits := 53 -}}
{{- $tightest := list -}}
{{- range (include "llm-twin.releaseNamedObjects" . | fromJsonArray) -}}
{{- $room := sub (index . 2 | int) (add1 (len (index . 1))) | int -}}
{{- if lt $room $fits }}{{ $fits = $room }}{{ $tightest = . }}{{ end -}}
{{- end -}}
{{- if gt (len .Release.Name) $fits -}}
{{- $name := printf "%s-%s" .Release.Name (index $tightest 1) -}}
{{- fail (printf "release name %q has %d characters: this chart takes at most %d, because the %s %q would have %d characters and Kubernetes allows %d%s. Choose a shorter release name (docs/deploy.md uses llm-twin)" .Release.Name (len .Release.Name) $fits (index $tightest 0) $name (len $name) (index $tightest 2 | int) (ternary " (its pods' controller-revision-hash label adds 11)" "" (eq (index $tightest 0) "StatefulSet"))) -}}
{{- end -}}
{{- end -}}

{{/* Names of the in-chart stores and the bucket Job (release name checked above). */}}
{{- define "llm-twin.mongodbName" -}}
{{- include "llm-twin.checkReleaseName" . -}}
{{- printf "%s-mongodb" .Release.Name -}}
{{- end -}}
{{- define "llm-twin.objectStoreName" -}}
{{- include "llm-twin.checkReleaseName" . -}}
{{- printf "%s-object-store" .Release.Name -}}
{{- end -}}
{{- define "llm-twin.createBucketName" -}}
{{- include "llm-twin.checkReleaseName" . -}}
{{- printf "%s-create-bucket" .Release.Name -}}
{{- end -}}

{{/* In-cluster service names of the stores (only meaningful when the store is enabled). */}}
{{- define "llm-twin.mongodbHost" -}}
{{- printf "%s.%s.svc" (include "llm-twin.mongodbName" .) .Release.Namespace -}}
{{- end -}}
{{- define "llm-twin.objectStoreHost" -}}
{{- printf "%s.%s.svc" (include "llm-twin.objectStoreName" .) .Release.Namespace -}}
{{- end -}}

{{/* TWIN_MONGODB_URI, or empty when it comes from the Secret. */}}
{{- define "llm-twin.mongodbUri" -}}
{{- if eq .Values.mongodb.mode "embedded" -}}
{{- printf "mongodb://%s:%v" (include "llm-twin.mongodbHost" .) .Values.mongodb.embedded.port -}}
{{- else if not .Values.mongodb.external.uriFromSecret -}}
{{- required "mongodb.external.uri is required when mongodb.mode=external (or set mongodb.external.uriFromSecret=true)" .Values.mongodb.external.uri -}}
{{- end -}}
{{- end -}}

{{/* TWIN_QDRANT_URL: the Qdrant dependency when enabled, else the external URL (required). */}}
{{- define "llm-twin.qdrantUrl" -}}
{{- if .Values.qdrant.enabled -}}
{{- printf "http://%s.%s.svc:6333" .Values.qdrant.fullnameOverride .Release.Namespace -}}
{{- else -}}
{{- required "vectorStore.url is required when qdrant.enabled=false" .Values.vectorStore.url -}}
{{- end -}}
{{- end -}}

{{/* TWIN_S3_ENDPOINT_URL: the dev object store when enabled, else the configured endpoint. */}}
{{- define "llm-twin.s3EndpointUrl" -}}
{{- if .Values.artifacts.devObjectStore.enabled -}}
{{- printf "http://%s:%v" (include "llm-twin.objectStoreHost" .) .Values.artifacts.devObjectStore.port -}}
{{- else -}}
{{- .Values.artifacts.s3EndpointUrl -}}
{{- end -}}
{{- end -}}

{{/* The artifact store's S3 endpoint as a JSON object: scheme, host (no port), hostPort (host[:port] as
written), port (explicit, else 443 for https and 80 for http). With artifacts.s3EndpointUrl empty and no
dev store (AWS S3): https, empty host, port 443. `inCluster`: the namespace of a <service>.<namespace>.svc
host (the dev store, or an S3-compatible service such as MinIO in the cluster), else empty. */}}
{{- define "llm-twin.s3Endpoint" -}}
{{- $url := include "llm-twin.s3EndpointUrl" . -}}
{{- $out := dict "scheme" "https" "host" "" "hostPort" "" "port" 443 "inCluster" "" -}}
{{- if $url -}}
{{- $u := urlParse $url -}}
{{- $parts := splitList ":" $u.host -}}
{{- $port := ternary 443 80 (eq $u.scheme "https") -}}
{{- if gt (len $parts) 1 }}{{ $port = atoi (last $parts) }}{{ end -}}
{{- $host := first $parts -}}
{{- $inCluster := "" -}}
{{- if regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.svc(\\.cluster\\.local)?\\.?$" $host -}}
{{- $inCluster = index (splitList "." $host) 1 -}}
{{- end -}}
{{- $out = dict "scheme" $u.scheme "host" $host "hostPort" $u.host "port" $port "inCluster" $inCluster -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Bucket of TWIN_ARTIFACTS_URI (s3://bucket/prefix). */}}
{{- define "llm-twin.artifactsBucket" -}}
{{- $rest := trimPrefix "s3://" .Values.artifacts.uri -}}
{{- first (splitList "/" $rest) -}}
{{- end -}}

{{/* Resources of the gpu profile, with the GPU limit when training.gpu is enabled. */}}
{{- define "llm-twin.gpuProfileLimits" -}}
{{- $limits := deepCopy .Values.tasks.profiles.gpu.limits -}}
{{- if .Values.training.gpu.enabled -}}
{{- $_ := set $limits .Values.training.gpu.resourceName (toString .Values.training.gpu.count) -}}
{{- end -}}
{{- toYaml $limits -}}
{{- end -}}

{{/* envFrom of every twin container: settings ConfigMap, then the credentials Secret. */}}
{{- define "llm-twin.envFrom" -}}
- configMapRef:
    name: {{ .Values.tasks.configMapName }}
- secretRef:
    name: {{ .Values.secrets.existingSecret }}
    optional: true
{{- end -}}

{{/* Skip annotations for checkov, each with its justification (see tests/chart/test_checkov.py). */}}
{{- define "llm-twin.checkovSkipsWorkload" -}}
checkov.io/skip1: CKV_K8S_43=Images are pinned by release tag (images.tag); digests are pinned at release time by the registry, not in the chart
checkov.io/skip2: CKV_K8S_15=Release tags are immutable, so IfNotPresent is safe and avoids a registry round-trip per pod (configs/execution.yaml uses the same policy)
{{- end -}}

{{/* The base model a stable predictor serves (serving.baseModel, or the Hugging Face runtime's model when
set); empty when none is configured (inferenceservice.yaml refuses that). */}}
{{- define "llm-twin.servingBaseUri" -}}
{{- $s := .Values.serving -}}
{{- $base := $s.baseModel.storageUri -}}
{{- if eq ($s.predictor.runtime | default "twin") "huggingface" -}}
{{- $hf := $s.predictor.huggingface | default dict -}}
{{- if $hf.storageUri }}{{ $base = $hf.storageUri }}{{ else if $hf.modelId }}{{ $base = printf "hf://%s" $hf.modelId }}{{ end -}}
{{- end -}}
{{- $base -}}
{{- end -}}

{{/* Every model URI a serving pod is given at install (space-separated): the base model (a rollback
returns to it) and the authors' production weights. */}}
{{- define "llm-twin.servedModelUris" -}}
{{- $uris := list (include "llm-twin.servingBaseUri" .) -}}
{{- range .Values.serving.authors }}{{ $uris = append $uris (.storageUri | default "") }}{{ end -}}
{{- $uris | compact | join " " -}}
{{- end -}}

{{/* "true" when KServe's storage initializer may download an s3:// model: a served model URI above, or
a version of the model registry, which lives in the artifact store (artifacts.uri) and which
`twin deploy` puts on the predictors (STORAGE_URI / model.storageUri = the version's s3:// URI). */}}
{{- define "llm-twin.servingReadsS3Models" -}}
{{- $uris := append (splitList " " (include "llm-twin.servedModelUris" .)) .Values.artifacts.uri -}}
{{- $s3 := false -}}
{{- range $uris }}{{ if hasPrefix "s3://" . }}{{ $s3 = true }}{{ end }}{{ end -}}
{{- if and .Values.serving.enabled $s3 }}true{{ end -}}
{{- end -}}

{{/* The Secret the serving service account lists for KServe's storage initializer (s3:// models), or
empty when serving reads no s3:// model: serving.s3Credentials.existingSecret, else the chart's
<serving.serviceAccount.name>-s3 (serving-s3-secret.yaml). */}}
{{- define "llm-twin.servingS3Secret" -}}
{{- if include "llm-twin.servingReadsS3Models" . -}}
{{- .Values.serving.s3Credentials.existingSecret | default (printf "%s-s3" .Values.serving.serviceAccount.name) -}}
{{- end -}}
{{- end -}}

{{/* "true" when KServe's storage initializer may download an hf:// model: a served model URI above (the
base model, an author's weights, the Hugging Face runtime's model). `twin deploy` rolls out registry
versions (s3://) and rolls back to the base model, so the values name every hf:// one. */}}
{{- define "llm-twin.servingReadsHfModels" -}}
{{- $hf := false -}}
{{- range (splitList " " (include "llm-twin.servedModelUris" .)) }}{{ if hasPrefix "hf://" . }}{{ $hf = true }}{{ end }}{{ end -}}
{{- if and .Values.serving.enabled $hf }}true{{ end -}}
{{- end -}}

{{/* The Secret the serving service account lists for the Hugging Face token of KServe's storage
initializer (hf:// models), or empty when serving reads no hf:// model: serving.hfCredentials.existingSecret,
else the chart's <serving.serviceAccount.name>-hf (serving-hf-secret.yaml). */}}
{{- define "llm-twin.servingHfSecret" -}}
{{- if include "llm-twin.servingReadsHfModels" . -}}
{{- .Values.serving.hfCredentials.existingSecret | default (printf "%s-hf" .Values.serving.serviceAccount.name) -}}
{{- end -}}
{{- end -}}

{{/* PromQL: what a counter counted in the last `window`, per series, for an alert on "> 0":
include "llm-twin.promql.events" (list "<series selector>" "<window>" "<release namespace>").
increase() alone is 0 for a series whose first sample already holds the count (prometheus/prometheus#1673),
and the StatsD exporter exports a series only from its first event: the first drift and the first
failure of each DAG after the exporter (re)starts would never fire. The second branch counts such a new
series whole (its value; a series born at 0, such as a counter incremented by 0, adds 0). A series is
new when it has no sample in the 30 minutes before the window, so a scrape gap shorter than that is
never taken for a new series, and only while Prometheus itself was scraping then (some `up` series of a
target in the release's namespace, where the StatsD exporter and the serving pods run, has a sample there:
a Thanos Ruler querying several Prometheus servers is not fooled by another cluster's; count() of nothing
is empty): after a Prometheus outage longer than 30
minutes, or on a Prometheus that starts without data, an old, unchanged count is not paged as new when
the lookback falls in the gap. The price: while it does (the first `window` after Prometheus starts
without data; after an outage, from `window` + 30 minutes after it began to `window` after it ended),
this branch counts nothing, so the first event of a series that appeared in the `window` before is held
for missing data: its alert comes late, or resolves and fires again. A scrape gap of the exporter alone
longer than 30 minutes (Prometheus running: other targets' `up`, or its own at 0) can still raise a
stale alert for a while. Each branch is filtered or matched per series, before any aggregation: `or`
keeps the left side's (then 0) value for a label set both sides have; `and on()` passes the left side
through unchanged.
Not seen: an in-place restart of the exporter container (same pod, same labels) after which a series
that stood at 1 comes back at 1 within 30 minutes. tests/chart/promtool/alerts_test.yaml replays these
cases. */}}
{{- define "llm-twin.promql.events" -}}
{{- $series := index . 0 -}}
{{- $window := index . 1 -}}
{{- $namespace := index . 2 -}}
(increase({{ $series }}[{{ $window }}]) > 0)
  or (
    ({{ $series }} unless present_over_time({{ $series }}[30m] offset {{ $window }}))
      and on() count(present_over_time(up{namespace="{{ $namespace }}"}[30m] offset {{ $window }}))
  )
{{- end -}}

{{/* Env of the Airflow containers for the on-call notifiers (plugins/twin_ops/notifiers.py), from
global.alertChannels. The Airflow chart renders it: values.yaml sets `airflow.extraEnv` to an include
of this template, and the Airflow chart renders extraEnv with `tpl`, in its own context (where this
chart's global values are visible, its other values are not), into every Airflow container: scheduler
(with LocalExecutor it runs the tasks, their failure callbacks and twin_monitoring's check_drift),
triggerer (DeadlineAlert AsyncCallbacks), DAG processor (failure callbacks of tasks that died outside
their runner), API server, workers and the KubernetesExecutor pod template. The Secret references are optional: a missing Secret or key leaves Airflow running without
that channel (NOTES.txt warns) instead of stopping every Airflow pod. */}}
{{- define "llm-twin.airflowAlertEnv" -}}
{{- $c := dig "alertChannels" dict (.Values.global | default dict) -}}
{{- with $c.webhookUrlFromSecret }}{{ if .name }}
- name: TWIN_ALERT_WEBHOOK_URL
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | default "url" | quote }}
      optional: true
{{- end }}{{ end }}
{{- with $c.slackConnId }}
- name: TWIN_ALERT_SLACK_CONN_ID
  value: {{ . | quote }}
{{- end }}
{{- with $c.slackConnectionFromSecret }}{{ if .name }}
- name: AIRFLOW_CONN_{{ required "global.alertChannels.slackConnectionFromSecret needs global.alertChannels.slackConnId (the connection's id)" $c.slackConnId | upper }}
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | default "connection" | quote }}
      optional: true
{{- end }}{{ end }}
{{- end -}}
