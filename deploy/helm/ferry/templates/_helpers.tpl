{{- define "ferry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferry.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ferry.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ferry.secretName" -}}
{{- default (include "ferry.fullname" .) .Values.passwords.existingSecret -}}
{{- end -}}

{{/* The pod of both modes: ferry <mode>, configured by FERRY_* variables. */}}
{{- define "ferry.pod" -}}
metadata:
  labels:
    {{- include "ferry.selector" . | nindent 4 }}
  annotations:
    checksum/config: {{ .Values.config | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if eq .Values.mode "migrate" }}
  restartPolicy: Never
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  automountServiceAccountToken: false
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: ferry
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: [{{ .Values.mode | quote }}]
      env:
        - name: FERRY_JOB
          value: {{ default (include "ferry.fullname" .) .Values.jobName | quote }}
        - name: FERRY_DATA_DIR
          value: /data
        - name: FERRY_STATUS_ADDR
          value: {{ printf "0.0.0.0:%d" (int .Values.statusPort) | quote }}
        - name: FERRY_LOG_FORMAT
          value: json
        {{- if and (eq .Values.mode "sync") (gt (int .Values.shards) 1) }}
        - name: FERRY_SHARDS
          value: {{ printf "ordinal/%d" (int .Values.shards) | quote }}
        {{- end }}
        {{- with .Values.source.addr }}
        - name: FERRY_SOURCE
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.source.username }}
        - name: FERRY_SOURCE_USERNAME
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.target.addr }}
        - name: FERRY_TARGET
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.target.username }}
        - name: FERRY_TARGET_USERNAME
          value: {{ . | quote }}
        {{- end }}
        - name: FERRY_SOURCE_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ include "ferry.secretName" . }}
              key: {{ .Values.passwords.sourceKey }}
              optional: true
        - name: FERRY_TARGET_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ include "ferry.secretName" . }}
              key: {{ .Values.passwords.targetKey }}
              optional: true
        {{- if .Values.config }}
        - name: FERRY_CONFIG
          value: /etc/ferry/job.toml
        {{- end }}
        {{- range $k, $v := .Values.env }}
        - name: {{ $k }}
          value: {{ $v | quote }}
        {{- end }}
      ports:
        - name: status
          containerPort: {{ .Values.statusPort }}
      livenessProbe:
        httpGet:
          path: {{ .Values.probes.liveness.path }}
          port: status
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      {{- if ne .Values.mode "migrate" }}
      readinessProbe:
        httpGet:
          path: {{ .Values.probes.readiness.path }}
          port: status
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        {{- if .Values.config }}
        - name: config
          mountPath: /etc/ferry
          readOnly: true
        {{- end }}
  volumes:
    {{- if or (eq .Values.mode "migrate") (not .Values.persistence.enabled) }}
    - name: data
      emptyDir:
        sizeLimit: {{ .Values.emptyDirSizeLimit }}
    {{- end }}
    {{- if .Values.config }}
    - name: config
      configMap:
        name: {{ include "ferry.fullname" . }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
