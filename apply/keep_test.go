package apply

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/target"
)

// keepSnapshot is a snapshot as the scan reader builds it: in db 3, a key
// and a big key the stream writes after it (an rdb.AuxKeep field).
func keepSnapshot() []byte {
	str := func(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }
	b := []byte("REDIS0009")
	b = append(b, 0xFE, 3)                // SELECTDB 3
	b = str(append(b, 0xFA), rdb.AuxKeep) // AUX ferry-keep big
	b = str(b, "big")
	b = str(append(b, 0), "small") // a string key
	b = str(b, "v")
	b = append(b, 0xFF)
	return append(b, make([]byte, 8)...) // no checksum
}

// TestSnapshotKeepsBigKeys: the keys an rdb.AuxKeep field names are in the
// snapshot's key set (in the db db_map maps theirs to), so the sweep keeps
// them; nothing is written or counted for them.
func TestSnapshotKeepsBigKeys(t *testing.T) {
	for _, sweep := range []bool{true, false} {
		kw := &keepWriter{}
		var seq atomic.Uint64
		app := New(Config{Log: zerolog.Nop(), Table: router.Builtin(), Fenced: true, Seq: &seq, Job: "test",
			DBMap: map[int]int{3: 5}, TargetRDB: 10, MaxBulk: 1 << 20})
		app.SetSink(target.SingleSink(kw, 0, "", 7, 1<<20))
		app.BeginSnapshot("x", 0, sweep)
		rr := rdb.NewReader(bytes.NewReader(keepSnapshot()), rdb.Options{})
		for {
			rec, err := rr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			err = app.Record(context.Background(), rec, rr.Version())
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := app.Sink().Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := app.Keys.Load(); n != 1 {
			t.Errorf("sweep=%v: %d keys counted, want 1", sweep, n)
		}
		for _, op := range kw.ops {
			if strings.Contains(op, "big") {
				t.Errorf("sweep=%v: wrote %s", sweep, op)
			}
		}
		keys := app.SnapshotKeys()
		if !sweep {
			if keys != nil {
				t.Errorf("a key set without a sweep")
			}
			continue
		}
		if !keys.Has(5, []byte("big")) || !keys.Has(5, []byte("small")) {
			t.Errorf("the key set lacks big or small in db 5")
		}
		if keys.Has(3, []byte("big")) || keys.Has(5, []byte("other")) {
			t.Errorf("the key set has big in db 3, or a key never named")
		}
	}
}
