package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// verifyCLI runs `ferry verify args...` as main would and returns the exit
// code, stdout and stderr.
func verifyCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := report(cmdVerify(args, &out, &errb), &errb)
	return code, out.String(), errb.String()
}

func TestVerifyCommand(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	ctx := context.Background()
	sc, dc := src.Client(t), dst.Client(t)
	for i := 0; i < 50; i++ {
		sc.Set(ctx, fmt.Sprint("k", i), i, 0)
		dc.Set(ctx, fmt.Sprint("k", i), i, 0)
	}
	sc.HSet(ctx, "h", "f", "1")
	dc.HSet(ctx, "h", "f", "1")
	flags := []string{"--source", src.URL(), "--target", dst.URL(), "--log-level", "warn", "--round-delay", "10ms"}

	code, out, errs := verifyCLI(flags...)
	if code != 0 || !strings.Contains(out, "51 source keys compared") || !strings.HasSuffix(out, "source and target are equal\n") || errs != "" {
		t.Fatalf("equal: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	dc.Del(ctx, "k7")
	dc.HSet(ctx, "h", "f", "2")
	rep := filepath.Join(t.TempDir(), "report.json")
	code, out, errs = verifyCLI(append(flags, "--report", rep)...)
	if code != 1 || !strings.HasSuffix(out, "source and target differ\n") ||
		errs != "ferry: error: source and target differ: 2 differences (missing 1, value 1)\n" {
		t.Fatalf("differ: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	b, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Equal bool `json:"equal"`
		Diffs []struct {
			DB     int    `json:"db"`
			Key    string `json:"key"`
			Kind   string `json:"kind"`
			Detail string `json:"detail"`
		} `json:"diffs"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if r.Equal || len(r.Diffs) != 2 || r.Diffs[0].Key != "h" || r.Diffs[0].Kind != "value" || r.Diffs[0].Detail != `field "f": "1" != "2"` ||
		r.Diffs[1].Key != "k7" || r.Diffs[1].Kind != "missing" {
		t.Fatalf("report:\n%s", b)
	}

	// keys mode does not look at values; a config file gives the endpoints
	cfg := filepath.Join(t.TempDir(), "job.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("max_ops_per_second = 5000\n[source]\naddr = %q\n[target]\naddr = %q\n", src.URL(), dst.URL())), 0o600)
	code, out, errs = verifyCLI("-c", cfg, "--mode", "keys", "--log-level", "warn", "--rounds", "1")
	if code != 1 || !strings.Contains(out, "differences: 1 (missing 1)") {
		t.Fatalf("keys mode: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	dc.Set(ctx, "k7", 7, 0)
	dc.HSet(ctx, "h", "f", "1")
	code, out, errs = verifyCLI("-c", cfg, "--mode", "sample", "--sample", "10", "--log-level", "warn")
	if code != 0 || !strings.Contains(out, "verify (sample)") || !strings.Contains(out, "source keys compared") {
		t.Fatalf("sample mode: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	// runtime failure: exit 1, one line
	code, _, errs = verifyCLI("--source", src.URL(), "--target", fmt.Sprintf("redis://127.0.0.1:%d", redistest.FreePort(t)))
	if code != 1 || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "ferry: error: verify: target: connect 127.0.0.1:") {
		t.Fatalf("unreachable target: exit %d, stderr:\n%s", code, errs)
	}
}

func TestVerifyUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--target", "redis://127.0.0.1:1"}, "ferry: config: source: required: verify compares the source with the target\n"},
		{[]string{"--source", "redis://127.0.0.1:1"}, "ferry: config: target: required"},
		{[]string{"--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--mode", "bogus"}, `ferry: --mode "bogus" is not one of full, sample, keys`},
		{[]string{"--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--sample", "5"}, "ferry: --sample applies only to --mode sample"},
		{[]string{"--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--rounds", "0"}, "ferry: --rounds must be 1 or more, not 0"},
		{[]string{"--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--ttl-tolerance", "-1s"}, "ferry: --ttl-tolerance must not be negative"},
		{[]string{"--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--report", "/nonexistent/dir/r.json"}, "ferry: --report /nonexistent/dir/r.json: no such directory"},
		{[]string{"--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--rdb", "x.rdb"}, "ferry: config: rdb: not used by verify"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
	} {
		code, _, errs := verifyCLI(c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", c.args, code, errs, c.want)
		}
	}
	if code, _, errs := verifyCLI("--help"); code != 0 || !strings.Contains(errs, "-ttl-tolerance") || !strings.Contains(errs, "Usage: ferry verify") {
		t.Errorf("--help: exit %d\n%s", code, errs)
	}
}
