package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestMigrateCutoverRecipe: the README's migration recipe in one command —
// migrate, cut over with the source paused, verify the frozen data, unpause.
func TestMigrateCutoverRecipe(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 200, DBs: []int{0, 1}, Seed: 51})
	hook := t.TempDir() + "/hook"
	cfg := jobFile(t, "cutover_pause_max = \"20s\"\ncutover_hook = \"touch "+hook+"\"\n")
	code, out, errs := ferryRunWithin(t, 60*time.Second, "migrate", "-c", cfg, "--source", src.URL(), "--target", dst.URL(),
		"--cutover", "--verify", "--unpause")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"cutover ready", "verified:", "migrated"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if _, err := readFileErr(hook); err != nil {
		t.Errorf("the hook did not run: %v", err)
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	// Unpaused at the end: the source takes writes at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := src.Client(t).Set(ctx, "after", "1", 0).Err(); err != nil {
		t.Errorf("source still paused: %v", err)
	}
}

func TestCutoverFlagsChecked(t *testing.T) {
	rdb := t.TempDir() + "/x.rdb"
	if err := os.WriteFile(rdb, []byte("REDIS0010"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--unpause"}, "--cutover"},
		{[]string{"migrate", "--rdb", rdb, "--target", "redis://127.0.0.1:2", "--cutover"}, "live source"},
	} {
		code, out, errs := ferryRun(c.args...)
		checkFailure(t, code, out, errs, exitUsage, c.want)
	}
}

func readFileErr(p string) ([]byte, error) { return os.ReadFile(p) }
