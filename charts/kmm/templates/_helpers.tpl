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

{{/* A string quoted for /bin/sh. */}}
{{- define "kmm.shquote" -}}
'{{ replace "'" "'\\''" (toString .) }}'
{{- end }}

{{/* Words quoted for /bin/sh and joined by spaces. */}}
{{- define "kmm.shwords" -}}
{{- $out := list }}
{{- range . }}{{ $out = append $out (include "kmm.shquote" .) }}{{ end }}
{{- join " " $out }}
{{- end }}

{{/*
The loader's load script: copy firmware, unload in-tree modules it replaces, then modprobe the
module (or, with modulesLoadingOrder [main, dep1, dep2], dep1, dep2 and then main). Call with
the module's container spec.
*/}}
{{- define "kmm.loader.loadScript" -}}
{{- $mp := .modprobe }}
{{- $dir := default "/opt" $mp.dirName }}
{{- $lines := list "set -eu" }}
{{- if $mp.firmwarePath }}
{{- $lines = append $lines (printf "mkdir -p /var/lib/firmware && cp -r %s/. /var/lib/firmware/" (include "kmm.shquote" $mp.firmwarePath)) }}
{{- end }}
{{- range .inTreeModulesToRemove }}
{{- $lines = append $lines (printf "modprobe -r -v %s || true" (include "kmm.shquote" .)) }}
{{- end }}
{{- if and $mp.args $mp.args.load }}
{{- $lines = append $lines (printf "modprobe %s" (include "kmm.shwords" $mp.args.load)) }}
{{- else if $mp.modulesLoadingOrder }}
{{- range rest $mp.modulesLoadingOrder }}
{{- $lines = append $lines (printf "modprobe -v -d %s %s" (include "kmm.shquote" $dir) (include "kmm.shquote" .)) }}
{{- end }}
{{- $lines = append $lines (printf "modprobe -v -d %s %s %s" (include "kmm.shquote" $dir) (include "kmm.shquote" $mp.moduleName) (include "kmm.shwords" (default list $mp.parameters)) | trimSuffix " ") }}
{{- else }}
{{- $lines = append $lines (printf "modprobe -v -d %s %s %s" (include "kmm.shquote" $dir) (include "kmm.shquote" $mp.moduleName) (include "kmm.shwords" (default list $mp.parameters)) | trimSuffix " ") }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}

{{/* The loader's unload script: the reverse of the load script. */}}
{{- define "kmm.loader.unloadScript" -}}
{{- $mp := .modprobe }}
{{- $dir := default "/opt" $mp.dirName }}
{{- if and $mp.args $mp.args.unload }}
{{- printf "modprobe %s" (include "kmm.shwords" $mp.args.unload) }}
{{- else if $mp.modulesLoadingOrder }}
{{- $mods := list $mp.moduleName }}
{{- range reverse (rest $mp.modulesLoadingOrder) }}{{ $mods = append $mods . }}{{ end }}
{{- printf "modprobe -r -v -d %s %s" (include "kmm.shquote" $dir) (include "kmm.shwords" $mods) }}
{{- else }}
{{- printf "modprobe -r -v -d %s %s" (include "kmm.shquote" $dir) (include "kmm.shquote" $mp.moduleName) }}
{{- end }}
{{- end }}

{{/* What kmm-render needs to know of a module, as JSON. Call with (list $ $module). */}}
{{- define "kmm.module.renderSpec" -}}
{{- $root := index . 0 }}{{- $m := index . 1 }}
{{- $c := $m.moduleLoader.container }}
{{- $maps := list }}
{{- range $c.kernelMappings }}
{{- $maps = append $maps (pick . "literal" "regexp" "containerImage") }}
{{- end }}
{{- $spec := dict "name" $m.name "namespace" (include "kmm.module.namespace" (list $root $m)) "selector" $m.selector "kernelMappings" $maps }}
{{- with $c.containerImage }}{{ $_ := set $spec "containerImage" . }}{{ end }}
{{- toJson $spec }}
{{- end }}
