package status

import (
	"testing"
	"time"
)

// TestRates: the rates of two counts, over the time since the last sample
// once it is at least every old; a count that went back starts again.
func TestRates(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var r Rates
	r.Start(t0)
	for _, s := range []struct {
		ms                int
		ops, commands     int64
		wantOps, wantCmds float64
	}{
		{2000, 100, 20000, 50, 10000}, // the averages since Start
		{2500, 200, 30000, 50, 10000}, // under a second since: unchanged
		{3000, 300, 40000, 200, 20000},
		{4000, 10, 500, 0, 0}, // counts started again (new writers)
		{5000, 60, 1500, 50, 1000},
	} {
		ops, cmds := r.Sample(at(s.ms), s.ops, s.commands, time.Second)
		if ops != s.wantOps || cmds != s.wantCmds {
			t.Errorf("at %d ms (%d ops, %d commands): %v ops/s, %v commands/s; want %v, %v", s.ms, s.ops, s.commands, ops, cmds, s.wantOps, s.wantCmds)
		}
	}
	// every 0: each sample computes, over whatever time passed.
	var z Rates
	z.Start(t0)
	if ops, cmds := z.Sample(at(500), 10, 1000, 0); ops != 20 || cmds != 2000 {
		t.Errorf("every 0: %v, %v", ops, cmds)
	}
}
