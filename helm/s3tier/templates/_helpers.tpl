{{/*
Names, labels and the pieces every workload shares. The container is defined once here
("s3tier.container") and used by the Deployment, the StatefulSet and, in sidecar mode, by the
snippet NOTES.txt prints, so the three cannot drift apart.
*/}}

{{- define "s3tier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "s3tier.fullname" -}}
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

{{- define "s3tier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "s3tier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "s3tier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "s3tier.labels" -}}
helm.sh/chart: {{ include "s3tier.chart" . }}
{{ include "s3tier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "s3tier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "s3tier.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "s3tier.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where the chart mounts the rendered settings file and the credentials Secret. */}}
{{- define "s3tier.configDir" -}}/etc/s3tier{{- end }}
{{- define "s3tier.secretDir" -}}/etc/s3tier-secret{{- end }}

{{/* The Secret holding client credentials and the admin token: rendered, or the user's own. */}}
{{- define "s3tier.secretName" -}}
{{- default (include "s3tier.fullname" .) .Values.auth.existingSecret.name }}
{{- end }}

{{/* The key of the credentials file in that Secret; empty when there is none. */}}
{{- define "s3tier.credentialsKey" -}}
{{- if .Values.auth.existingSecret.name }}
{{- .Values.auth.existingSecret.credentialsKey }}
{{- else if .Values.auth.credentials }}credentials.yaml
{{- end }}
{{- end }}

{{/* The key of the admin token in that Secret; empty when there is none. */}}
{{- define "s3tier.adminTokenKey" -}}
{{- if .Values.auth.existingSecret.name }}
{{- .Values.auth.existingSecret.adminTokenKey }}
{{- else if .Values.auth.adminToken }}admin-token
{{- end }}
{{- end }}

{{/*
The address s3tier listens on: every interface in standalone mode and for a sidecar in a fleet
(its peers must reach it), sidecar.host otherwise.
*/}}
{{- define "s3tier.host" -}}
{{- if and (eq .Values.mode "sidecar") (not .Values.fleet.enabled) }}{{ .Values.sidecar.host }}{{ else }}0.0.0.0{{ end }}
{{- end }}

{{/* Where the TLS Secret is mounted, and the scheme clients and members use. */}}
{{- define "s3tier.tlsDir" -}}/etc/s3tier-tls{{- end }}
{{- define "s3tier.scheme" -}}
{{- if .Values.tls.secretName }}https{{ else }}http{{ end }}
{{- end }}

{{/* The headless Service that gives a standalone fleet's pods their DNS names. */}}
{{- define "s3tier.peersService" -}}
{{- printf "%s-peers" (include "s3tier.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A standalone fleet's members: every StatefulSet pod by its stable DNS name, this one included
(a pod not Ready has no name yet, and its peers skip it until it has).
*/}}
{{- define "s3tier.members" -}}
{{- $root := . }}
{{- $members := list }}
{{- range $i := until (int .Values.replicaCount) }}
{{- $members = append $members (printf "%s://%s-%d.%s.%s.svc:%d" (include "s3tier.scheme" $root) (include "s3tier.fullname" $root) $i (include "s3tier.peersService" $root) $root.Release.Namespace (int $root.Values.port)) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{/* The Secret and key holding the fleet's peer secret. */}}
{{- define "s3tier.peerSecretName" -}}
{{- default (include "s3tier.fullname" .) .Values.fleet.existingSecret.name }}
{{- end }}
{{- define "s3tier.peerSecretKey" -}}
{{- if .Values.fleet.existingSecret.name }}{{ .Values.fleet.existingSecret.key }}{{ else }}peer-secret{{ end }}
{{- end }}

{{/* Non-empty when s3tier listens on a loopback address, reachable only inside its pod. */}}
{{- define "s3tier.loopback" -}}
{{- if has (include "s3tier.host" .) (list "127.0.0.1" "localhost" "::1") }}true{{ end }}
{{- end }}

{{/*
The auth mode s3tier will run with, mirroring its own default (config/settings.py): none on a
loopback address, sigv4 on any other.
*/}}
{{- define "s3tier.authMode" -}}
{{- if .Values.auth.mode }}{{ .Values.auth.mode }}
{{- else if include "s3tier.loopback" . }}none
{{- else }}sigv4
{{- end }}
{{- end }}

{{/* Disk tier volume size in GiB: the tier plus 10% (at least 1GiB) for metadata and spooling. */}}
{{- define "s3tier.volumeGiB" -}}
{{- $disk := int .Values.cache.diskGiB }}
{{- add $disk (max 1 (div $disk 10)) }}
{{- end }}

{{/* Memory request in MiB: each worker holds its own RAM tier plus the process overhead. */}}
{{- define "s3tier.memoryRequestMiB" -}}
{{- mul (int .Values.workers) (add (int .Values.cache.ramMiB) (int .Values.resources.memoryOverheadMiB)) }}
{{- end }}

{{- define "s3tier.resources" -}}
{{- if .Values.resources.override }}
{{- toYaml .Values.resources.override }}
{{- else }}
{{- $request := int (include "s3tier.memoryRequestMiB" .) -}}
requests:
  cpu: {{ .Values.resources.cpuRequest | quote }}
  memory: {{ printf "%dMi" $request }}
limits:
  {{- with .Values.resources.cpuLimit }}
  cpu: {{ . | quote }}
  {{- end }}
  memory: {{ printf "%dMi" (add $request (int .Values.resources.memoryLimitHeadroomMiB)) }}
{{- end }}
{{- end }}

{{/*
A probe of one admin endpoint. kubelet's httpGet connects to the pod IP, which a server bound to
127.0.0.1 never hears, so a loopback s3tier is probed from inside its container instead.
Arguments: dict "root" $ "path" "/_s3tier/healthz" "timing" .Values.probes.liveness
*/}}
{{- define "s3tier.probe" -}}
{{- $root := .root }}
{{- if include "s3tier.loopback" $root -}}
exec:
  command:
    - python
    - -c
    {{- if $root.Values.tls.secretName }}
    - {{ printf "import ssl, urllib.request; urllib.request.urlopen('https://127.0.0.1:%d%s', timeout=2, context=ssl._create_unverified_context())" (int $root.Values.port) .path | quote }}
    {{- else }}
    - {{ printf "import urllib.request; urllib.request.urlopen('http://127.0.0.1:%d%s', timeout=2)" (int $root.Values.port) .path | quote }}
    {{- end }}
{{- else -}}
httpGet:
  path: {{ .path }}
  port: http
  scheme: {{ upper (include "s3tier.scheme" $root) }}
{{- end }}
{{ toYaml .timing }}
{{- end }}

{{/* The s3tier container: one list item, for a pod's containers (or initContainers). */}}
{{- define "s3tier.container" -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
- name: s3tier
  image: {{ include "s3tier.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if and $sidecar .Values.sidecar.native }}
  # A native sidecar: started before the application's containers, stopped after them.
  restartPolicy: Always
  {{- end }}
  # Flags outrank the ConfigMap's file and the image's S3TIER_* defaults. These are the pod's
  # wiring (ports, probes, mounts and the ServiceMonitor depend on them); the file holds the rest.
  args:
    - serve
    - --config={{ include "s3tier.configDir" . }}/s3tier.yaml
    - --host={{ include "s3tier.host" . }}
    - --port={{ int .Values.port }}
    - --disk-dir={{ .Values.cache.dir }}
    - --auth={{ include "s3tier.authMode" . }}
    {{- if .Values.tls.secretName }}
    - --tls-cert={{ include "s3tier.tlsDir" . }}/tls.crt
    - --tls-key={{ include "s3tier.tlsDir" . }}/tls.key
    - --tls-ca={{ include "s3tier.tlsDir" . }}/ca.crt
    {{- end }}
    {{- if and .Values.fleet.enabled $sidecar }}
    # Members: the Ready pods behind the application's headless Service, each by its address.
    - --peers=dns:{{ include "s3tier.scheme" . }}://{{ required "fleet.sidecarPeers: the application's headless Service" .Values.fleet.sidecarPeers }}:{{ int .Values.port }}
    - --advertise={{ include "s3tier.scheme" . }}://$(S3TIER_POD_IP):{{ int .Values.port }}
    {{- else if .Values.fleet.enabled }}
    - --peers={{ include "s3tier.members" . }}
    - --advertise={{ include "s3tier.scheme" . }}://$(S3TIER_POD_NAME).{{ include "s3tier.peersService" . }}.{{ .Release.Namespace }}.svc:{{ int .Values.port }}
    {{- end }}
  {{- $tokenKey := include "s3tier.adminTokenKey" . }}
  {{- if or $tokenKey .Values.extraEnv .Values.fleet.enabled }}
  env:
    {{- if .Values.fleet.enabled }}
    # Set before the flags that name them: Kubernetes expands $(VAR) in args from env.
    - name: S3TIER_POD_NAME
      valueFrom:
        fieldRef: {fieldPath: metadata.name}
    - name: S3TIER_POD_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    - name: S3TIER_PEER_SECRET
      valueFrom:
        secretKeyRef:
          name: {{ include "s3tier.peerSecretName" . }}
          key: {{ required "fleet.existingSecret.key: the key holding the peer secret" (include "s3tier.peerSecretKey" .) }}
    {{- end }}
    {{- if $tokenKey }}
    - name: S3TIER_ADMIN_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "s3tier.secretName" . }}
          key: {{ $tokenKey }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- if not (include "s3tier.loopback" .) }}
  ports:
    - name: http
      containerPort: {{ int .Values.port }}
      protocol: TCP
  {{- end }}
  startupProbe:
    {{- include "s3tier.probe" (dict "root" . "path" "/_s3tier/healthz" "timing" .Values.probes.startup) | nindent 4 }}
  livenessProbe:
    {{- include "s3tier.probe" (dict "root" . "path" "/_s3tier/healthz" "timing" .Values.probes.liveness) | nindent 4 }}
  readinessProbe:
    {{- include "s3tier.probe" (dict "root" . "path" "/_s3tier/readyz" "timing" .Values.probes.readiness) | nindent 4 }}
  resources:
    {{- include "s3tier.resources" . | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: s3tier-config
      mountPath: {{ include "s3tier.configDir" . }}
      readOnly: true
    {{- if include "s3tier.credentialsKey" . }}
    - name: s3tier-secret
      mountPath: {{ include "s3tier.secretDir" . }}
      readOnly: true
    {{- end }}
    {{- if .Values.tls.secretName }}
    # A directory mount, not subPath: the kubelet swaps a renewed Secret in, s3tier reloads it.
    - name: s3tier-tls
      mountPath: {{ include "s3tier.tlsDir" . }}
      readOnly: true
    {{- end }}
    - name: s3tier-cache
      mountPath: {{ .Values.cache.dir }}
    - name: s3tier-tmp
      mountPath: /tmp
{{- end }}

{{/*
The pod volumes the container mounts. The cache volume is left out when a StatefulSet provides
it through a volumeClaimTemplate.
*/}}
{{- define "s3tier.volumes" -}}
- name: s3tier-config
  configMap:
    name: {{ include "s3tier.fullname" . }}
{{- $credentialsKey := include "s3tier.credentialsKey" . }}
{{- if $credentialsKey }}
- name: s3tier-secret
  secret:
    secretName: {{ include "s3tier.secretName" . }}
    items:
      - key: {{ $credentialsKey }}
        path: credentials.yaml
{{- end }}
{{- with .Values.tls.secretName }}
- name: s3tier-tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- if not (include "s3tier.claimsVolume" .) }}
{{- if eq .Values.cache.volume.type "hostPath" }}
- name: s3tier-cache
  hostPath:
    path: {{ .Values.cache.volume.hostPath }}
    type: Directory
{{- else }}
- name: s3tier-cache
  emptyDir:
    sizeLimit: {{ include "s3tier.volumeGiB" . }}Gi
{{- end }}
{{- end }}
- name: s3tier-tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end }}

{{/* Non-empty when standalone mode runs a StatefulSet: for persistence, or as a fleet. */}}
{{- define "s3tier.usesStatefulSet" -}}
{{- if and (eq .Values.mode "standalone") (or .Values.persistence.enabled .Values.fleet.enabled) }}true{{ end }}
{{- end }}

{{/* Non-empty when the StatefulSet's volumeClaimTemplate provides the cache volume. */}}
{{- define "s3tier.claimsVolume" -}}
{{- if and (eq .Values.mode "standalone") .Values.persistence.enabled }}true{{ end }}
{{- end }}

{{/* Spread a standalone fleet's members over nodes: each node down takes one member's share. */}}
{{- define "s3tier.antiAffinity" -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "s3tier.selectorLabels" . | fromYaml)) }}
podAntiAffinity:
{{- if eq .Values.fleet.antiAffinity "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list $term) | nindent 4 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    {{- toYaml (list (dict "weight" 100 "podAffinityTerm" $term)) | nindent 4 }}
{{- end }}
{{- end }}

{{/* The pod spec shared by the Deployment and the StatefulSet. */}}
{{- define "s3tier.podSpec" -}}
serviceAccountName: {{ include "s3tier.serviceAccountName" . }}
# s3tier never calls the Kubernetes API; IRSA mounts its own projected token.
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
terminationGracePeriodSeconds: {{ int .Values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
containers:
  {{- include "s3tier.container" . | nindent 2 }}
volumes:
  {{- include "s3tier.volumes" . | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.affinity }}
affinity:
  {{- toYaml .Values.affinity | nindent 2 }}
{{- else if and .Values.fleet.enabled (eq .Values.mode "standalone") (ne .Values.fleet.antiAffinity "none") }}
affinity:
  {{- include "s3tier.antiAffinity" . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod template metadata: a config checksum, so a changed ConfigMap rolls the pods. */}}
{{- define "s3tier.podMetadata" -}}
labels:
  {{- include "s3tier.selectorLabels" . | nindent 2 }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
  checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
  {{- with .Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
