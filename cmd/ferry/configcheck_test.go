package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestConfigCheckSameAsSync: config check refuses exactly what sync and
// migrate refuse before connecting anywhere (a /db suffix on an address),
// with the same line and exit code.
func TestConfigCheckSameAsSync(t *testing.T) {
	for _, c := range []struct{ key, addr string }{
		{"target", "redis://127.0.0.1:1/3"},
		{"source", "redis://127.0.0.1:2/1"},
	} {
		other := map[string]string{"target": "source", "source": "target"}[c.key]
		file := jobFile(t, fmt.Sprintf("[%s]\naddr = %q\n[%s]\naddr = \"redis://127.0.0.1:3\"\n", c.key, c.addr, other))
		var lines []string
		for _, cmd := range [][]string{{"config", "check", "-c", file}, {"sync", "-c", file}, {"migrate", "-c", file}} {
			code, out, errs := ferryRun(cmd...)
			checkFailure(t, code, out, errs, exitUsage, c.key+".addr", "not supported")
			lines = append(lines, lastLine(errs))
		}
		if lines[0] != lines[1] || lines[1] != lines[2] {
			t.Errorf("%s with a /db: config check, sync and migrate say different things:\n%q", c.key, lines)
		}
	}
}

// TestConfigCheckOldNameKey: job = "..." (the old spelling of name) is
// still read, with one warning line that says what to write instead.
func TestConfigCheckOldNameKey(t *testing.T) {
	p := writeFile(t, t.TempDir(), "old.toml", "job = \"old\"\n[source]\naddr = \"redis://127.0.0.1:6391\"\n[target]\naddr = \"redis://127.0.0.1:6390\"\n")
	code, out, errs := ferryRun("config", "check", "-c", p)
	if code != exitOK || !strings.Contains(out, `name = "old"`) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, `ferry: warning: `) || !strings.Contains(errs, `write name = "..."`) {
		t.Errorf("want one warning line about the old spelling, got:\n%s", errs)
	}
}
