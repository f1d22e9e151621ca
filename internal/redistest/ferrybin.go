package redistest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var ferryBin struct {
	once sync.Once
	path string
	err  error
}

// FerryBinary returns the path of a ferry binary built from ./cmd/ferry once per
// test binary (with -race when the tests run with -race). FERRY_BINARY, when set,
// is used instead.
func FerryBinary(t testing.TB) string {
	t.Helper()
	ferryBin.once.Do(func() { ferryBin.path, ferryBin.err = buildFerry() })
	if ferryBin.err != nil {
		t.Fatalf("redistest: %v", ferryBin.err)
	}
	return ferryBin.path
}

func buildFerry() (string, error) {
	if p := os.Getenv("FERRY_BINARY"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("FERRY_BINARY: %w", err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	// One dir per test process under a shared parent; dirs of dead processes are removed.
	parent := filepath.Join(os.TempDir(), "ferry-redistest-bin")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	if ents, err := os.ReadDir(parent); err == nil {
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() &&
				errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				os.RemoveAll(filepath.Join(parent, e.Name()))
			}
		}
	}
	dir := filepath.Join(parent, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "ferry")
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/ferry")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, b)
	}
	return out, nil
}

// moduleRoot finds the directory of ferry's go.mod, upwards from the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			if strings.TrimSpace(first) == "module github.com/ferry-dev/ferry" {
				return dir, nil
			}
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("go.mod of module github.com/ferry-dev/ferry not found above the working directory")
		}
		dir = up
	}
}
