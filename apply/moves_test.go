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
// new shard moves, not only the first; the old shard's commands on a
// moved key received before the RESTORE (history) and its move DEL after it
// are dropped, while its commands on keys not moved yet still apply.
func TestMovesKeyByKey(t *testing.T) {
	m := NewMoves([][][2]int{{{0, 16383}}, {}}, nil)
	now := time.Now()
	before, after := now.Add(-time.Millisecond), now.Add(time.Millisecond)
	restore := func(key string) *router.Command { return cmd("RESTORE", key, "0", "payload") }
	for _, k := range []string{"{t}a", "{t}b", "{t}c"} {
		if got := m.filterMoved(1, restore(k), now); got.Err() != nil || len(got.Args) != 5 || string(got.Args[4]) != "REPLACE" {
			t.Fatalf("RESTORE %s: %q %v", k, got.Args, got.Err())
		}
	}
	for _, k := range []string{"{t}a", "{t}b", "{t}c"} {
		if got := m.filterMoved(0, cmd("APPEND", k, "x"), before); got != nil {
			t.Errorf("stream 0's late APPEND %s from before the move was applied", k)
		}
		if got := m.filterMoved(0, cmd("DEL", k), before); got != nil {
			t.Errorf("stream 0's DEL %s from before the move was applied", k)
		}
		if got := m.filterMoved(0, cmd("DEL", k), after); got != nil {
			t.Errorf("stream 0's move DEL %s was applied", k)
		}
		if got := m.filterMoved(1, cmd("APPEND", k, "y"), after); got == nil {
			t.Errorf("stream 1's APPEND %s (the owner) was dropped", k)
		}
	}
	if got := m.filterMoved(0, cmd("APPEND", "{t}d", "x"), before); got == nil {
		t.Errorf("stream 0's APPEND on a key not moved yet was dropped")
	}
	// Once stream 0 said its last word (the DEL), its commands on the key
	// received well after the move — it owns the slot again after a move
	// back, the key created anew — apply.
	later := now.Add(moveSkew)
	if got := m.filterMoved(0, cmd("SET", "{t}a", "z"), later); got == nil {
		t.Errorf("stream 0's SET after its DEL was dropped")
	}
	// A write of stream 0 after its DEL but received within moveSkew of the
	// move: its reader lags, the DEL was a user's before the move and the
	// write history too; the move's DEL is to come.
	if got := m.filterMoved(0, cmd("SET", "{t}b", "z"), after); got != nil {
		t.Errorf("stream 0's SET within the skew after a user DEL was applied")
	}
	if got := m.filterMoved(0, cmd("DEL", "{t}b"), after); got != nil {
		t.Errorf("stream 0's move DEL after a user DEL in the skew was applied")
	}
	if got := m.filterMoved(0, cmd("SET", "{t}b", "z"), later); got == nil {
		t.Errorf("stream 0's SET after its move DEL was dropped")
	}

	// A key that moves on before the first old owner's DEL came: both old
	// owners' late commands are dropped, the RESTORE of the stream that
	// lags included.
	m = NewMoves([][][2]int{{{0, 16383}}, {}, {}}, nil)
	t1, t2 := now, now.Add(time.Second)
	m.filterMoved(2, restore("{u}k"), t2) // stream 1 lags: stream 2's RESTORE first
	if got := m.filterMoved(1, restore("{u}k"), t1); got != nil {
		t.Errorf("stream 1's RESTORE from before the key moved on was applied")
	}
	for _, st := range []int{0, 1} {
		if got := m.filterMoved(st, cmd("APPEND", "{u}k", "x"), t1); got != nil {
			t.Errorf("stream %d's late APPEND after the key moved on was applied", st)
		}
	}
	if got := m.filterMoved(0, cmd("DEL", "{u}k"), t1.Add(time.Millisecond)); got != nil {
		t.Errorf("stream 0's move DEL (before the key moved on) was applied")
	}
	if got := m.filterMoved(1, cmd("DEL", "{u}k"), t2.Add(time.Millisecond)); got != nil {
		t.Errorf("stream 1's move DEL was applied")
	}
	if got := m.filterMoved(2, cmd("APPEND", "{u}k", "y"), t2.Add(time.Millisecond)); got == nil {
		t.Errorf("the owner's APPEND was dropped")
	}
}
