package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const unitPath = "systemd/ferry@.service"

// readUnit returns the keys of a unit file by "Section.Key", in order.
func readUnit(t *testing.T, text string) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[':
			section = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: not key=value: %q", unitPath, l)
			}
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys
}

// TestSystemdUnit: the unit restarts on failure but not on a bad
// configuration, gives ferry more than its stop timeout, is hardened, and
// its command line and environment make a valid ferry configuration; the
// unit passes systemd-analyze verify where systemd is installed.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u := readUnit(t, string(b))
	last := func(k string) string {
		if v := u[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	for k, want := range map[string]string{
		"Service.Restart":                  "on-failure",
		"Service.RestartPreventExitStatus": "2",
		"Service.NoNewPrivileges":          "yes",
		"Service.ProtectSystem":            "strict",
		"Service.ProtectHome":              "yes",
		"Service.PrivateTmp":               "yes",
		"Service.DynamicUser":              "yes",
		"Service.StateDirectory":           "ferry",
		"Service.KillSignal":               "SIGTERM",
		"Service.CapabilityBoundingSet":    "",
		"Install.WantedBy":                 "multi-user.target",
	} {
		if got, ok := u[k]; !ok || last(k) != want {
			t.Errorf("%s = %q (set: %v), want %q", k, got, ok, want)
		}
	}
	stop, err := time.ParseDuration(last("Service.TimeoutStopSec"))
	if err != nil || stop <= 30*time.Second {
		t.Errorf("TimeoutStopSec %q is not above ferry's 30 s stop timeout", last("Service.TimeoutStopSec"))
	}

	exec0 := strings.Fields(last("Service.ExecStart"))
	if len(exec0) != 4 || exec0[0] != "/usr/local/bin/ferry" || exec0[1] != "sync" || exec0[2] != "-c" || exec0[3] != "/etc/ferry/%i.toml" {
		t.Fatalf("ExecStart %q", last("Service.ExecStart"))
	}
	// The instance's command line and environment, with %i = orders, the
	// job file in a temp dir: ferry accepts them and names the job after
	// the instance.
	bin := buildStatic(t, "v0.0.0-unit-test")
	dir := t.TempDir()
	rdb := filepath.Join(dir, "dump.rdb")
	if err := os.WriteFile(rdb, []byte("REDIS0011"), 0o644); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(dir, "orders.toml")
	if err := os.WriteFile(job, []byte("name = \"other\"\ntarget = \"redis://10.0.0.2:6379\"\nrdb = \""+rdb+"\"\nstatus_addr = \"127.0.0.1:9200\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expand := func(s string) string {
		return strings.NewReplacer("%i", "orders", "%S", filepath.Join(dir, "state")).Replace(s)
	}
	cmd := exec.Command(bin, "config", "check", "-c", job)
	cmd.Env = []string{"HOME=/nonexistent"}
	for _, e := range u["Service.Environment"] {
		for _, kv := range strings.Fields(e) {
			cmd.Env = append(cmd.Env, expand(kv))
		}
	}
	out, err := cmd.CombinedOutput()
	for _, w := range []string{`name = "orders"`, `data_dir = "` + filepath.Join(dir, "state", "ferry") + `"`, `log_format = "json"`} {
		if err != nil || !strings.Contains(string(out), w) {
			t.Errorf("ferry config check with the unit's environment: %v, want %q in\n%s", err, w, out)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit checked by its keys only")
		return
	}
	// verify wants an executable ExecStart: the binary just built.
	unit := filepath.Join(dir, "ferry@.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/ferry", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || strings.Contains(string(out), "ferry@.service:") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
