package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// helmVersion is the helm CLI the chart is tested with, built from its Go
// module when no helm is on the PATH.
const helmVersion = "v4.3.2"

const chartDir = "helm/ferry"

// helmBinary finds helm: $FERRY_HELM, helm on the PATH, or (with
// FERRY_HELM_TEST=1, as make chart-test sets) one built from its module into
// the user cache. Building it takes minutes on a cold module cache, so
// without any of these the chart tests are skipped.
func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FERRY_HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if os.Getenv("FERRY_HELM_TEST") != "1" {
		t.Skip("no helm: run make chart-test (FERRY_HELM_TEST=1 builds helm " + helmVersion + "), or set FERRY_HELM")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "ferry-test", "helm-"+helmVersion)
	bin := filepath.Join(dir, "helm")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "helm.sh/helm/v4/cmd/helm@"+helmVersion)
	cmd.Dir = os.TempDir() // outside this module: its go.mod does not apply
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install helm %s: %v\n%s", helmVersion, err, out)
	}
	return bin
}

func helm(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

type obj = map[string]any

// render runs helm template and returns the manifests by kind.
func render(t *testing.T, bin string, set ...string) map[string][]obj {
	t.Helper()
	args := []string{"template", "rel", chartDir}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, bin, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	byKind := map[string][]obj{}
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("helm template output: %v\n%s", err, out)
		}
		if o != nil {
			k, _ := o["kind"].(string)
			byKind[k] = append(byKind[k], o)
		}
	}
	return byKind
}

// at walks o by keys (strings) and indexes (ints); nil when absent.
func at(o any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := o.(obj)
			if !ok {
				return nil
			}
			o = m[k]
		case int:
			l, ok := o.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			o = l[k]
		}
	}
	return o
}

func one(t *testing.T, m map[string][]obj, kind string) obj {
	t.Helper()
	if len(m[kind]) != 1 {
		t.Fatalf("%d %s manifests, want 1 (have %v)", len(m[kind]), kind, kinds(m))
	}
	return m[kind][0]
}

func kinds(m map[string][]obj) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// envOf returns the container's env entries by name.
func envOf(c any) map[string]obj {
	env := map[string]obj{}
	for _, e := range at(c, "env").([]any) {
		env[e.(obj)["name"].(string)] = e.(obj)
	}
	return env
}

// checkPod checks what both modes' pods must have: the non-root user, the
// passwords from the Secret, the status port, probes on the health
// endpoints, resources, and a grace period above the stop timeout.
func checkPod(t *testing.T, spec obj, secret string, readiness bool) {
	t.Helper()
	if at(spec, "securityContext", "runAsNonRoot") != true {
		t.Errorf("pod securityContext.runAsNonRoot is not true: %v", at(spec, "securityContext"))
	}
	if u, _ := at(spec, "securityContext", "runAsUser").(int); u == 0 {
		t.Errorf("pod runs as uid %v", at(spec, "securityContext", "runAsUser"))
	}
	if g, _ := spec["terminationGracePeriodSeconds"].(int); g <= 30 {
		t.Errorf("terminationGracePeriodSeconds %v is not above ferry's 30 s stop timeout", spec["terminationGracePeriodSeconds"])
	}
	c := at(spec, "containers", 0)
	if at(c, "securityContext", "allowPrivilegeEscalation") != false || at(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Errorf("container securityContext: %v", at(c, "securityContext"))
	}
	if at(c, "resources", "requests") == nil || at(c, "resources", "limits", "memory") == nil {
		t.Errorf("container resources: %v", at(c, "resources"))
	}
	env := envOf(c)
	for _, side := range []string{"SOURCE", "TARGET"} {
		e := env["FERRY_"+side+"_PASSWORD"]
		if at(e, "valueFrom", "secretKeyRef", "name") != secret || at(e, "value") != nil {
			t.Errorf("FERRY_%s_PASSWORD is not from the Secret %q: %v", side, secret, e)
		}
	}
	if at(env["FERRY_DATA_DIR"], "value") != "/data" || at(env["FERRY_STATUS_ADDR"], "value") != "0.0.0.0:9121" {
		t.Errorf("data dir / status address: %v %v", env["FERRY_DATA_DIR"], env["FERRY_STATUS_ADDR"])
	}
	if at(c, "ports", 0, "containerPort") != 9121 || at(c, "ports", 0, "name") != "status" {
		t.Errorf("ports: %v", at(c, "ports"))
	}
	if at(c, "livenessProbe", "httpGet", "path") != "/livez" || at(c, "livenessProbe", "httpGet", "port") != "status" {
		t.Errorf("livenessProbe: %v", at(c, "livenessProbe"))
	}
	if readiness && at(c, "readinessProbe", "httpGet", "path") != "/readyz" {
		t.Errorf("readinessProbe: %v", at(c, "readinessProbe"))
	}
	mounted := false
	for _, m := range at(c, "volumeMounts").([]any) {
		mounted = mounted || at(m, "mountPath") == "/data"
	}
	if !mounted {
		t.Errorf("nothing mounted on /data: %v", at(c, "volumeMounts"))
	}
}

// TestChart: helm lint, and helm template of a sync, a migrate and the
// optional parts, with the manifests checked.
func TestChart(t *testing.T) {
	bin := helmBinary(t)
	addrs := []string{"source.addr=redis://src:6379", "target.addr=redis://dst:6379"}
	for _, mode := range []string{"sync", "migrate"} {
		args := []string{"lint", "--strict", chartDir, "--set", "mode=" + mode}
		for _, a := range addrs {
			args = append(args, "--set", a)
		}
		if out, err := helm(t, bin, args...); err != nil {
			t.Errorf("helm lint (%s): %v\n%s", mode, err, out)
		}
	}

	t.Run("sharded sync", func(t *testing.T) {
		m := render(t, bin, append(addrs, "shards=3")...)
		ss := one(t, m, "StatefulSet")
		if at(ss, "spec", "replicas") != 3 || at(ss, "spec", "podManagementPolicy") != "Parallel" {
			t.Errorf("StatefulSet replicas %v, policy %v; want 3, Parallel", at(ss, "spec", "replicas"), at(ss, "spec", "podManagementPolicy"))
		}
		env := envOf(at(ss, "spec", "template", "spec", "containers", 0))
		if at(env["FERRY_SHARDS"], "value") != "ordinal/3" {
			t.Errorf("FERRY_SHARDS: %v", env["FERRY_SHARDS"])
		}
	})

	t.Run("sync", func(t *testing.T) {
		m := render(t, bin, append(addrs, "passwords.existingSecret=redis-pw", "config=restore = \"never\"")...)
		ss := one(t, m, "StatefulSet")
		if at(ss, "spec", "replicas") != 1 {
			t.Errorf("StatefulSet replicas %v, want 1", at(ss, "spec", "replicas"))
		}
		spec := at(ss, "spec", "template", "spec").(obj)
		checkPod(t, spec, "redis-pw", true)
		if at(ss, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "data" {
			t.Errorf("no data volume claim: %v", at(ss, "spec", "volumeClaimTemplates"))
		}
		env := envOf(at(spec, "containers", 0))
		if at(env["FERRY_CONFIG"], "value") != "/etc/ferry/job.toml" {
			t.Errorf("FERRY_CONFIG: %v", env["FERRY_CONFIG"])
		}
		if at(env["FERRY_SOURCE"], "value") != "redis://src:6379" {
			t.Errorf("FERRY_SOURCE: %v", env["FERRY_SOURCE"])
		}
		if cm := one(t, m, "ConfigMap"); at(cm, "data", "job.toml") != "restore = \"never\"\n" {
			t.Errorf("ConfigMap job.toml: %q", at(cm, "data", "job.toml"))
		}
		if len(m["Secret"]) != 0 || len(m["Job"]) != 0 || len(m["ServiceMonitor"]) != 0 {
			t.Errorf("unexpected manifests: %v", kinds(m))
		}
		if svc := one(t, m, "Service"); at(svc, "spec", "ports", 0, "port") != 9121 {
			t.Errorf("Service ports: %v", at(svc, "spec", "ports"))
		}
	})

	t.Run("migrate", func(t *testing.T) {
		m := render(t, bin, append(addrs, "mode=migrate", "passwords.source=s3cret", "serviceMonitor.enabled=true")...)
		j := one(t, m, "Job")
		spec := at(j, "spec", "template", "spec").(obj)
		checkPod(t, spec, "rel-ferry", false)
		if at(spec, "restartPolicy") != "Never" || at(j, "spec", "parallelism") != 1 || at(j, "spec", "podReplacementPolicy") != "Failed" {
			t.Errorf("Job: restartPolicy %v, parallelism %v, podReplacementPolicy %v",
				at(spec, "restartPolicy"), at(j, "spec", "parallelism"), at(j, "spec", "podReplacementPolicy"))
		}
		if a := at(spec, "containers", 0, "args", 0); a != "migrate" {
			t.Errorf("args: %v", at(spec, "containers", 0, "args"))
		}
		if s := one(t, m, "Secret"); at(s, "data", "source-password") != "czNjcmV0" {
			t.Errorf("Secret: %v", s)
		}
		if sm := one(t, m, "ServiceMonitor"); at(sm, "spec", "endpoints", 0, "port") != "status" || at(sm, "spec", "endpoints", 0, "path") != "/metrics" {
			t.Errorf("ServiceMonitor: %v", sm)
		}
		if len(m["StatefulSet"]) != 0 {
			t.Errorf("a migrate renders a StatefulSet")
		}
	})

	// Refused by the schema or the templates, with the value not echoed.
	for _, bad := range [][]string{
		{"mode=bogus"},
		{"source.addr=redis://u:pw-xyz@src:6379", "target.addr=redis://dst:6379"},
		{"terminationGracePeriodSeconds=10"},
		{"podSecurityContext.runAsUser=0"},
		{"source.addr=redis://src:6379"},
	} {
		args := []string{"template", "rel", chartDir}
		for _, s := range bad {
			args = append(args, "--set", s)
		}
		if len(bad) == 1 && !strings.HasPrefix(bad[0], "source") {
			args = append(args, "--set", addrs[0], "--set", addrs[1])
		}
		out, err := helm(t, bin, args...)
		if err == nil {
			t.Errorf("helm template --set %v: accepted", bad)
		}
		if strings.Contains(out, "pw-xyz") {
			t.Errorf("helm template --set %v: the password is in the error:\n%s", bad, out)
		}
	}
}
