package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestLogLines: JSON log lines carry the time to the millisecond, and
// durations only as seconds in fields named *_s.
func TestLogLines(t *testing.T) {
	_, path := savedRDB(t)
	dst := redistest.Start(t)
	code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	ms := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			continue // the last line may be ferry's own error line
		}
		n++
		if ts, _ := m["time"].(string); !ms.MatchString(ts) {
			t.Errorf("time %q is not RFC 3339 UTC with milliseconds: %s", m["time"], line)
		}
		for k, v := range m {
			if _, isNum := v.(float64); !isNum {
				if s, ok := v.(string); ok && regexp.MustCompile(`^\d+(\.\d+)?(ms|s|m|h)$`).MatchString(s) {
					t.Errorf("field %s holds a duration as text %q (want seconds in a *_s field): %s", k, s, line)
				}
			}
		}
	}
	if n == 0 {
		t.Fatalf("no JSON log line:\n%s", errs)
	}
}

func TestDevNullIsNotATerminal(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("/dev/null is taken for a terminal: a progress bar would be drawn into it")
	}
}
