package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// two endpoints that are valid everywhere; top-level keys only, so a test
// snippet may follow with its own keys and tables.
const base = "source = \"redis://10.0.0.1:6379\"\ntarget = \"redis://10.0.0.2:6379\"\n"

// load parses text as a single-job file and validates it.
func load(t *testing.T, text string) (Job, error) {
	t.Helper()
	j, err := ParseJob([]byte(text), "job.toml")
	if err != nil {
		return j, err
	}
	err = j.Validate()
	return j, err
}

func mustLoad(t *testing.T, text string) Job {
	t.Helper()
	j, err := load(t, text)
	if err != nil {
		t.Fatalf("unexpected error: %v\n--- config:\n%s", err, text)
	}
	return j
}

// wantErr fails unless err's message contains want.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q\n   want it to contain %q", err.Error(), want)
	}
	if _, ok := err.(*Error); !ok {
		t.Fatalf("error %q is %T, want *conf.Error", err, err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q spans several lines", err)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var testDir, _ = os.Getwd()

// mustAbs is name in the package directory (tests may chdir).
func mustAbs(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join(testDir, name)
}
