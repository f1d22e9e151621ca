package main

import (
	"runtime/debug"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
)

// TestMemoryLimit: the default settings give the README's full-sync bound
// (256 MiB), an import 192 MiB (no spool); the limit is set memOutside under
// the bound; the bound grows with the settings; a batch
// counts the jobs that run at once; GOMEMLIMIT wins.
func TestMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := zerolog.Nop()

	d := conf.Default()
	if got := jobMemory(d); got != 256<<20 {
		t.Errorf("default settings: %d MiB, want 256", got>>20)
	}
	imp := d
	imp.RDB = "dump.rdb"
	if got := jobMemory(imp); got != 192<<20 {
		t.Errorf("an import (no spool): %d MiB, want 192", got>>20)
	}
	big := d
	big.SpoolMemory = 1 << 30
	if got := jobMemory(big) - jobMemory(d); got != 1<<30-64<<20 {
		t.Errorf("spool_memory 1GiB adds %d MiB, want 960", got>>20)
	}
	if got := setMemoryLimit(log, d, d); got != 512<<20-memOutside || debug.SetMemoryLimit(-1) != 512<<20-memOutside {
		t.Errorf("two jobs at once: limit %d MiB", got>>20)
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	debug.SetMemoryLimit(100 << 20)
	if got := setMemoryLimit(log, d); got != 100<<20 {
		t.Errorf("with GOMEMLIMIT: %d MiB", got>>20)
	}
}
