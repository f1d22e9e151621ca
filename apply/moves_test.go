package apply

import (
	"testing"
	"time"

	"github.com/ferry-dev/ferry/router"
)

// cmd is a command parsed as the Applier parses it.
func cmd(args ...string) *router.Command {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	c, _ := router.Parse(out)
	return &c
}

// A slot migrates one key at a time: every key of the slot restored on the
// new shard comes from the old one, not only the first, and the old shard's
// late commands on a moved key (its DEL included) are dropped while its
// commands on keys not moved yet still apply.
func TestMovesKeyByKey(t *testing.T) {
	m := NewMoves([][][2]int{{{0, 16383}}, {}}, nil)
	now := time.Now()
	restore := func(key string) *router.Command { return cmd("RESTORE", key, "0", "payload") }
	for _, k := range []string{"{t}a", "{t}b", "{t}c"} {
		if from := m.restoreFrom(1, restore(k)); from != 0 {
			t.Fatalf("RESTORE %s on stream 1 comes from stream %d, want 0", k, from)
		}
		if got := m.filterMoved(1, restore(k), now); got.Err() != nil || len(got.Args) != 5 || string(got.Args[4]) != "REPLACE" {
			t.Fatalf("RESTORE %s: %q %v", k, got.Args, got.Err())
		}
	}
	for _, k := range []string{"{t}a", "{t}b", "{t}c"} {
		if got := m.filterMoved(0, cmd("APPEND", k, "x"), now); got != nil {
			t.Errorf("stream 0's late APPEND %s after the move was applied", k)
		}
		if got := m.filterMoved(0, cmd("DEL", k), now); got != nil {
			t.Errorf("stream 0's move DEL %s was applied", k)
		}
		if got := m.filterMoved(1, cmd("APPEND", k, "y"), now); got == nil {
			t.Errorf("stream 1's APPEND %s (the owner) was dropped", k)
		}
	}
	if got := m.filterMoved(0, cmd("APPEND", "{t}d", "x"), now); got == nil {
		t.Errorf("stream 0's APPEND on a key not moved yet was dropped")
	}
	// Once stream 0 said its last word (the DEL), its later commands on the
	// key — it owns the slot again after a move back — apply.
	if got := m.filterMoved(0, cmd("SET", "{t}a", "z"), now); got == nil {
		t.Errorf("stream 0's SET after its DEL was dropped")
	}

	// A key that moves on before the first old owner's DEL came: both old
	// owners' late commands are dropped.
	m = NewMoves([][][2]int{{{0, 16383}}, {}, {}}, nil)
	m.filterMoved(1, restore("{u}k"), now)
	m.filterMoved(2, restore("{u}k"), now)
	for _, st := range []int{0, 1} {
		if got := m.filterMoved(st, cmd("APPEND", "{u}k", "x"), now); got != nil {
			t.Errorf("stream %d's late APPEND after the key moved on was applied", st)
		}
		if got := m.filterMoved(st, cmd("DEL", "{u}k"), now); got != nil {
			t.Errorf("stream %d's late move DEL after the key moved on was applied", st)
		}
	}
	if got := m.filterMoved(2, cmd("APPEND", "{u}k", "y"), now); got == nil {
		t.Errorf("the owner's APPEND was dropped")
	}
}
