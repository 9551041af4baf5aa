{{/* Chart name, or nameOverride. */}}
{{- define "kmm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, else the release name when it holds the chart name, else
release-chart. Truncated at 63 characters (DNS-1123 labels).
*/}}
{{- define "kmm.fullname" -}}
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

{{/* Chart label value: name-version. */}}
{{- define "kmm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels on every object. */}}
{{- define "kmm.labels" -}}
helm.sh/chart: {{ include "kmm.chart" . }}
{{ include "kmm.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades (selectors are immutable). */}}
{{- define "kmm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kmm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Namespace of a module: its own, else the release namespace. Call with (list $ $module). */}}
{{- define "kmm.module.namespace" -}}
{{- $root := index . 0 }}{{- $m := index . 1 }}
{{- default $root.Release.Namespace $m.namespace }}
{{- end }}

{{/* Service account name of a namespace's loaders. */}}
{{- define "kmm.loader.serviceAccountName" -}}
{{- printf "%s-module-loader" (include "kmm.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The module list of the contract with kmm-render (pkg/contract): every module as declared, its
namespace filled in, as JSON.
*/}}
{{- define "kmm.modules.list" -}}
{{- $out := list }}
{{- range $m := .Values.modules }}
{{- $filled := dict "namespace" (include "kmm.module.namespace" (list $ $m)) }}
{{- if ne (default "helm" $m.via) "operator" }}
{{- $_ := set $filled "builder" (merge (dict "strategy" (include "kmm.module.strategy" (list $ $m))) (omit (default dict $m.builder) "strategy")) }}
{{- end }}
{{- $out = append $out (merge $filled (omit $m "namespace" "builder")) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* A helm-managed module's build strategy: its builder.strategy, else build.strategy. Call with (list $ $module). */}}
{{- define "kmm.module.strategy" -}}
{{- $root := index . 0 }}{{- $m := index . 1 }}
{{- default $root.Values.build.strategy (dig "builder" "strategy" "" $m) }}
{{- end }}

{{/*
Whether a module builds or signs anything, at the container or at a kernel mapping. Prints
"true" or nothing. Call with the module.
*/}}
{{- define "kmm.module.builds" -}}
{{- $c := dig "moduleLoader" "container" dict . }}
{{- $any := or $c.build $c.sign }}
{{- range $km := default list $c.kernelMappings }}
{{- if or $km.build $km.sign }}{{ $any = true }}{{ end }}
{{- end }}
{{- if $any }}true{{ end }}
{{- end }}

{{/* Whether a module signs anything. Prints "true" or nothing. Call with the module. */}}
{{- define "kmm.module.signs" -}}
{{- $c := dig "moduleLoader" "container" dict . }}
{{- $any := $c.sign }}
{{- range $km := default list $c.kernelMappings }}
{{- if $km.sign }}{{ $any = true }}{{ end }}
{{- end }}
{{- if $any }}true{{ end }}
{{- end }}

{{/* The ConfigMap of the scripts loader, build and device plugin pods run (files/). */}}
{{- define "kmm.scripts.name" -}}
{{- include "kmm.componentName" (list . "scripts") }}
{{- end }}

{{/* The namespaces of the helm-managed modules, sorted, as JSON. */}}
{{- define "kmm.module.namespaces" -}}
{{- $namespaces := dict }}
{{- range $m := .Values.modules }}
{{- if ne (default "helm" $m.via) "operator" }}
{{- $_ := set $namespaces (include "kmm.module.namespace" (list $ $m)) true }}
{{- end }}
{{- end }}
{{- keys $namespaces | sortAlpha | toJson }}
{{- end }}

{{/* Pod volume and mount of the scripts ConfigMap, mounted at /kmm/scripts. */}}
{{- define "kmm.scripts.volume" -}}
- name: kmm-scripts
  configMap:
    name: {{ include "kmm.scripts.name" . }}
    defaultMode: 0555
{{- end }}
{{- define "kmm.scripts.mount" -}}
- name: kmm-scripts
  mountPath: /kmm/scripts
  readOnly: true
{{- end }}

{{/* Security context of containers that need no privilege at all. Call with the user id. */}}
{{- define "kmm.restricted.securityContext" -}}
runAsUser: {{ . }}
runAsGroup: {{ . }}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/*
The BuildKit container of builds: rootless BuildKit needs user namespaces, so Unconfined seccomp
and AppArmor profiles (BuildKit's documented setting for rootless pods), and nothing else.
Call with (dict "ctx" $ "output" "registry"|"local").
*/}}
{{- define "kmm.build.container" -}}
{{- $root := .ctx }}
- name: kmm-build
  image: {{ include "kmm.image" $root.Values.build.builderImage | quote }}
  imagePullPolicy: IfNotPresent
  command: ["/bin/sh", "/kmm/scripts/build.sh"]
  env:
    - name: BUILDKITD_FLAGS
      value: --oci-worker-no-process-sandbox
    {{- if eq .output "registry" }}
    - name: KMM_SIGN_IMAGE
      value: {{ include "kmm.image" $root.Values.build.signImage | quote }}
    {{- end }}
    {{- if .dockerConfig }}
    - name: DOCKER_CONFIG
      value: /kmm/docker
    {{- end }}
  {{- with $root.Values.build.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    runAsNonRoot: true
    seccompProfile:
      type: Unconfined
    appArmorProfile:
      type: Unconfined
  volumeMounts:
    {{- include "kmm.scripts.mount" $root | nindent 4 }}
    - name: kmm-work
      mountPath: /kmm/work
    - name: kmm-state
      mountPath: /kmm/state
    - name: kmm-buildkit
      mountPath: /home/user/.local/share/buildkit
    {{- if eq .output "local" }}
    - name: kmm-build
      mountPath: /kmm/build
    {{- end }}
    {{- if .dockerConfig }}
    - name: kmm-docker
      mountPath: /kmm/docker
      readOnly: true
    {{- end }}
{{- end }}

{{/* The pull secret of a module's images as a docker config volume (kmm-docker), or nothing. */}}
{{- define "kmm.docker.volume" -}}
{{- with .imageRepoSecret }}
- name: kmm-docker
  secret:
    secretName: {{ .name }}
    items:
      - key: .dockerconfigjson
        path: config.json
{{- end }}
{{- end }}

{{/* ---- The KMM controller, its webhook and CRDs ---- */}}

{{/* Labels of a component's objects. Call with (dict "ctx" $ "component" "controller"). */}}
{{- define "kmm.componentLabels" -}}
{{ include "kmm.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: kmm
{{- end }}

{{/* Selector labels of a component's pods. Call with (dict "ctx" $ "component" "controller"). */}}
{{- define "kmm.componentSelectorLabels" -}}
{{ include "kmm.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Name of a component's objects: <fullname>-<suffix>, at most 63 characters. */}}
{{- define "kmm.componentName" -}}
{{- $root := index . 0 }}{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "kmm.fullname" $root | trunc (int (sub 62 (len $suffix)))) $suffix | trimSuffix "-" }}
{{- end }}

{{- define "kmm.controller.name" -}}{{ include "kmm.componentName" (list . "controller") }}{{- end }}
{{- define "kmm.webhook.name" -}}{{ include "kmm.componentName" (list . "webhook") }}{{- end }}
{{- define "kmm.config.name" -}}{{ include "kmm.componentName" (list . "manager-config") }}{{- end }}

{{- define "kmm.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (include "kmm.controller.name" .) .Values.controller.serviceAccount.name }}
{{- else }}
{{- required "controller.serviceAccount.name is required when controller.serviceAccount.create is false" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kmm.webhook.serviceAccountName" -}}
{{- if .Values.webhook.serviceAccount.create }}
{{- default (include "kmm.webhook.name" .) .Values.webhook.serviceAccount.name }}
{{- else }}
{{- required "webhook.serviceAccount.name is required when webhook.serviceAccount.create is false" .Values.webhook.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Whether the webhook is rendered: it needs the controller. Prints "true" or nothing. */}}
{{- define "kmm.webhook.enabled" -}}
{{- if and .Values.controller.enabled .Values.webhook.enabled }}true{{ end }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: the digest wins over the tag. */}}
{{- define "kmm.image" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (required (printf "image %s: a tag or a digest is required" .repository) (toString .tag)) }}
{{- end }}
{{- end }}

{{/*
The kmm-render image of a component (drift, upgrade), from .Values.<component>.image: the tag
defaults to the chart's appVersion, the release the image was published with.
*/}}
{{- define "kmm.renderImage" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- $image := index $root.Values $component "image" }}
{{- $repository := required (printf "%s.image.repository must not be empty: the default is kmm's published image; to mirror it, README \"The kmm-render image\"" $component) $image.repository }}
{{- include "kmm.image" (dict "repository" $repository "tag" (default $root.Chart.AppVersion (toString $image.tag)) "digest" $image.digest) }}
{{- end }}

{{/* The port of a "host:port" bind address. */}}
{{- define "kmm.bindPort" -}}
{{- regexFind "[0-9]+$" (toString .) }}
{{- end }}

{{/* Whether the controller serves metrics (bindAddress "0" turns them off). Prints "true" or nothing. */}}
{{- define "kmm.metrics.enabled" -}}
{{- $addr := toString (dig "metrics" "bindAddress" "0.0.0.0:8443" .Values.controller.config) }}
{{- if ne $addr "0" }}true{{ end }}
{{- end }}

{{/* The webhook Service name and its in-cluster DNS names. */}}
{{- define "kmm.webhook.serviceName" -}}{{ include "kmm.componentName" (list . "webhook-service") }}{{- end }}
{{- define "kmm.webhook.dnsNames" -}}
{{- $svc := include "kmm.webhook.serviceName" . }}
{{- toJson (list (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace)) }}
{{- end }}

{{/* The Secret that holds the webhook's serving certificate. */}}
{{- define "kmm.webhook.tlsSecretName" -}}
{{- if .Values.certManager.enabled }}
{{- include "kmm.componentName" (list . "webhook-tls") }}
{{- else }}
{{- include "kmm.componentName" (list . "webhook-selfsigned-tls") }}
{{- end }}
{{- end }}

{{/* cert-manager Certificate of the webhook, as "<namespace>/<name>" for cainjector. */}}
{{- define "kmm.webhook.certificateName" -}}{{ include "kmm.componentName" (list . "webhook") }}{{- end }}
{{- define "kmm.webhook.injectCAFrom" -}}{{ printf "%s/%s" .Release.Namespace (include "kmm.webhook.certificateName" .) }}{{- end }}

{{/*
The self-signed webhook CA and serving certificate, base64-encoded PEM, as JSON {ca, crt, key}.
Reused from the existing Secret when the cluster has one (so that `helm upgrade` does not rotate
them), else generated. Computed once per render and cached, so that the Secret, the
ValidatingWebhookConfiguration and the CRD conversion webhook all carry the same CA.
*/}}
{{- define "kmm.webhook.selfSignedTLS" -}}
{{- /*
The self-signed CA and serving certificate, as base64 (ca, caKey, crt, key) with their expiry
(caNotAfter, notAfter: RFC 3339). The certificate lives webhook.selfSignedValidityDays, the CA
that or ten years, whichever is longer. Kept from the existing Secret on upgrade while more than
webhook.selfSignedRenewBeforeDays remain; then the serving certificate is renewed, signed by
the same CA (the webhook configuration's caBundle does not change), and the CA too when it
expires within that window or its key is not in the Secret (Secrets of older chart versions).
Computed once per render.
*/ -}}
{{- if not (hasKey .Values "__kmmWebhookTLS") }}
{{- $name := include "kmm.webhook.tlsSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- $data := dict }}
{{- $ann := dict }}
{{- if $existing }}
{{- $data = default dict $existing.data }}
{{- $ann = default dict $existing.metadata.annotations }}
{{- end }}
{{- $days := int .Values.webhook.selfSignedValidityDays }}
{{- $renewAt := int64 (add (now | unixEpoch | int64) (mul (int .Values.webhook.selfSignedRenewBeforeDays) 86400)) }}
{{- $layout := "2006-01-02T15:04:05Z07:00" }}
{{- $notAfter := dateInZone $layout (now | dateModify (printf "+%dh" (mul $days 24))) "UTC" }}
{{- $valid := dict }}
{{- range $k := list "notAfter" "caNotAfter" }}
{{- $t := index $ann (printf "kmm.dev/webhook-tls-%s" ($k | kebabcase)) }}
{{- $_ := set $valid $k (and $t (gt (toDate $layout $t | unixEpoch | int64) $renewAt)) }}
{{- end }}
{{- $tls := dict }}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") $valid.notAfter }}
{{- $tls = dict "ca" (index $data "ca.crt") "caKey" (index $data "ca.key" | default "") "crt" (index $data "tls.crt") "key" (index $data "tls.key") "notAfter" (index $ann "kmm.dev/webhook-tls-not-after") "caNotAfter" (index $ann "kmm.dev/webhook-tls-ca-not-after" | default "") }}
{{- else }}
{{- $dns := include "kmm.webhook.dnsNames" . | fromJsonArray }}
{{- $ca := dict }}
{{- $caNotAfter := $notAfter }}
{{- if and (index $data "ca.crt") (index $data "ca.key") $valid.caNotAfter }}
{{- $ca = buildCustomCert (index $data "ca.crt") (index $data "ca.key") }}
{{- $caNotAfter = index $ann "kmm.dev/webhook-tls-ca-not-after" }}
{{- else }}
{{- $caDays := int (max $days 3650) }}
{{- $ca = genCA (printf "%s-webhook-ca" (include "kmm.fullname" .)) $caDays }}
{{- $caNotAfter = dateInZone $layout (now | dateModify (printf "+%dh" (mul $caDays 24))) "UTC" }}
{{- end }}
{{- $cert := genSignedCert (first $dns) nil $dns $days $ca }}
{{- $tls = dict "ca" ($ca.Cert | b64enc) "caKey" ($ca.Key | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "notAfter" $notAfter "caNotAfter" $caNotAfter }}
{{- end }}
{{- $_ := set .Values "__kmmWebhookTLS" $tls }}
{{- end }}
{{- toJson (get .Values "__kmmWebhookTLS") }}
{{- end }}

{{/* The caBundle of a webhook clientConfig: empty with cert-manager (cainjector fills it). */}}
{{- define "kmm.webhook.caBundle" -}}
{{- if not .Values.certManager.enabled }}
{{- (include "kmm.webhook.selfSignedTLS" . | fromJson).ca }}
{{- end }}
{{- end }}

{{/* Annotations of the generated CRD templates. Call with (dict "ctx" $ "conversion" true|false). */}}
{{- define "kmm.crd.annotations" -}}
{{- $root := .ctx }}
{{- if $root.Values.crds.keep }}
helm.sh/resource-policy: keep
{{- end }}
{{- if and .conversion (include "kmm.webhook.enabled" $root) $root.Values.certManager.enabled }}
cert-manager.io/inject-ca-from: {{ include "kmm.webhook.injectCAFrom" $root }}
{{- end }}
{{- end }}

{{/*
spec.conversion of a CRD with several versions (PreflightValidation v1beta1 <-> v1beta2): the
webhook server converts, as upstream's config/crd patches set up. Without the webhook: None.
*/}}
{{- define "kmm.crd.conversion" -}}
{{- if include "kmm.webhook.enabled" . }}
conversion:
  strategy: Webhook
  webhook:
    clientConfig:
      service:
        name: {{ include "kmm.webhook.serviceName" . }}
        namespace: {{ .Release.Namespace }}
        path: /convert
        port: {{ .Values.webhook.servicePort }}
      {{- with include "kmm.webhook.caBundle" . }}
      caBundle: {{ . }}
      {{- end }}
    conversionReviewVersions:
      - v1beta2
      - v1beta1
{{- else }}
conversion:
  strategy: None
{{- end }}
{{- end }}

{{/*
Scheduling of a component's pods: nodeSelector, affinity, tolerations, priorityClassName. The
webhook's empty fields fall back to the controller's. Call with (list $ .Values.webhook).
*/}}
{{- define "kmm.scheduling" -}}
{{- $root := index . 0 }}{{- $own := index . 1 }}
{{- $c := $root.Values.controller }}
{{- with ($own.nodeSelector | default $c.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($own.affinity | default $c.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($own.tolerations | default $c.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($own.priorityClassName | default $c.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* imagePullSecrets of the chart's own pods. */}}
{{- define "kmm.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ if kindIs "map" . }}{{ .name }}{{ else }}{{ . }}{{ end }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The operator ConfigMap's content (controller_config.yaml). */}}
{{- define "kmm.config.content" -}}
{{- toYaml .Values.controller.config }}
{{- end }}

{{/*
A device plugin container from KMM's DevicePluginContainerSpec, privileged as KMM makes it. It
ends with the volumeMounts list open, so that the caller can append mounts.
*/}}
{{- define "kmm.devicePlugin.container" -}}
image: {{ .image | quote }}
imagePullPolicy: {{ default "IfNotPresent" .imagePullPolicy }}
{{- with .command }}
command:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .args }}
args:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .env }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  privileged: true
volumeMounts:
  {{- with .volumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* ---- The upgrade controller (upgrade.enabled) ---- */}}

{{/* A module's upgrade policy, upgrade.policy merged under its own `upgrade:`, as JSON. Call with (list $ $m). */}}
{{- define "kmm.upgrade.policy" -}}
{{- $root := index . 0 }}{{- $m := index . 1 }}
{{- mergeOverwrite (deepCopy $root.Values.upgrade.policy) (deepCopy (default dict $m.upgrade)) | toJson }}
{{- end }}

{{/*
The upgrade controller's configuration (pkg/upgrade.Config) as JSON: every helm-managed module
with upgrade.policy merged under its own `upgrade:`.
*/}}
{{- define "kmm.upgrade.config" -}}
{{- $mods := list }}
{{- range $m := .Values.modules }}
{{- if ne (default "helm" $m.via) "operator" }}
{{- $policy := include "kmm.upgrade.policy" (list $ $m) | fromJson }}
{{- $mods = append $mods (dict "namespace" (include "kmm.module.namespace" (list $ $m)) "name" $m.name "devicePlugin" (not (empty $m.devicePlugin)) "policy" $policy) }}
{{- end }}
{{- end }}
{{- dict "modules" $mods | toPrettyJson }}
{{- end }}

{{/*
The namespaces whose pods the upgrade controller evicts (each module's drain.namespaces, else
the module's namespace), sorted, as JSON; and those where it also deletes them (drain.force).
Call with (list $ "evict") or (list $ "force").
*/}}
{{- define "kmm.upgrade.drainNamespaces" -}}
{{- $root := index . 0 }}{{- $what := index . 1 }}
{{- $out := dict }}
{{- range $m := $root.Values.modules }}
{{- if ne (default "helm" $m.via) "operator" }}
{{- $drain := default dict (include "kmm.upgrade.policy" (list $root $m) | fromJson).drain }}
{{- if and $drain.podSelector (or (eq $what "evict") $drain.force) }}
{{- range (default (list (include "kmm.module.namespace" (list $root $m))) $drain.namespaces) }}
{{- $_ := set $out . true }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- keys $out | sortAlpha | toJson }}
{{- end }}
