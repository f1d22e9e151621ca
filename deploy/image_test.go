// Package deploy holds no code: its tests check the deployment files of
// this directory (container image, Helm chart, systemd unit, Grafana
// dashboard) against the ferry they deploy.
package deploy

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerfile is what the tests rely on in ../Dockerfile.
type dockerfile struct {
	env        map[string]string // ENV of the final stage
	user       string
	expose     []string
	entrypoint string
	text       string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{env: map[string]string{}, text: string(b)}
	sc := bufio.NewScanner(strings.NewReader(d.text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM": // only the final stage counts
			d.env, d.user, d.expose, d.entrypoint = map[string]string{}, "", nil, ""
		case "ENV":
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				d.env[k] = v
			}
		case "USER":
			d.user = f[1]
		case "EXPOSE":
			d.expose = append(d.expose, f[1:]...)
		case "ENTRYPOINT":
			d.entrypoint = regexp.MustCompile(`"([^"]+)"`).FindStringSubmatch(sc.Text())[1]
		}
	}
	return d
}

// testRevision is the VCS revision the tests stamp (as make image does).
const testRevision = "0123456789abcdef0123456789abcdef01234567"

// buildStatic builds ferry as the Dockerfile does (deploy/build.sh).
func buildStatic(t *testing.T, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ferry")
	cmd := exec.Command("sh", "build.sh", out, version)
	cmd.Env = append(os.Environ(), "REVISION="+testRevision)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh deploy/build.sh: %v\n%s", err, b)
	}
	return out
}

// TestImageContract: the static binary of the image, run with the image's
// environment only, answers version and --help, and takes its
// configuration from the environment over a file.
func TestImageContract(t *testing.T) {
	d := readDockerfile(t)
	if !regexp.MustCompile(`(?m)^RUN .*\bsh deploy/build.sh `).MatchString(d.text) {
		t.Errorf("the Dockerfile does not build with deploy/build.sh")
	}
	if d.user == "" || d.user == "root" || strings.HasPrefix(d.user, "0") {
		t.Errorf("the image runs as %q, want a non-root user", d.user)
	}
	if d.env["FERRY_DATA_DIR"] != "/data" {
		t.Errorf("FERRY_DATA_DIR = %q, want /data", d.env["FERRY_DATA_DIR"])
	}
	_, port, _ := strings.Cut(d.env["FERRY_STATUS_ADDR"], ":")
	if port == "" || len(d.expose) != 1 || d.expose[0] != port {
		t.Errorf("EXPOSE %v does not match FERRY_STATUS_ADDR %q", d.expose, d.env["FERRY_STATUS_ADDR"])
	}
	if d.entrypoint != "/usr/local/bin/ferry" {
		t.Errorf("ENTRYPOINT %q", d.entrypoint)
	}

	bin := buildStatic(t, "v0.0.0-image-test")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary needs a dynamic loader: not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v: not static", libs)
	}
	f.Close()

	dir := t.TempDir()
	rdb := filepath.Join(dir, "dump.rdb")
	if err := os.WriteFile(rdb, []byte("REDIS0011"), 0o644); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(dir, "job.toml")
	if err := os.WriteFile(job, []byte("data_dir = \"/elsewhere\"\nlog_level = \"warn\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The image's environment and nothing else of the test's.
	run := func(extra []string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"HOME=/nonexistent"}
		for k, v := range d.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, extra...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}
	if code, out := run(nil, "version"); code != 0 || !strings.HasPrefix(out, "ferry v0.0.0-image-test (rev 0123456789ab, go") {
		t.Errorf("ferry version: exit %d: %q", code, out)
	}
	if code, out := run(nil, "--help"); code != 0 || !strings.Contains(out, "Usage:") {
		t.Errorf("ferry --help (the image's CMD): exit %d: %q", code, out)
	}
	code, out := run([]string{"FERRY_CONFIG=" + job, "FERRY_RDB=" + rdb, "FERRY_TARGET=redis://10.0.0.2:6379"}, "config", "check")
	for _, w := range []string{`data_dir = "/data"`, `status_addr = "` + d.env["FERRY_STATUS_ADDR"] + `"`, `log_format = "json"`,
		`log_level = "warn"`, `addr = "redis://10.0.0.2:6379"`, `rdb = "` + rdb + `"`} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("ferry config check with the image's environment: exit %d, want %q in\n%s", code, w, out)
		}
	}
}
