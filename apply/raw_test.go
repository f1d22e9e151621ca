package apply

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/filter"
	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/target"
	"github.com/ferry-dev/ferry/writer"
)

// keepWriter keeps what it is submitted: the batches' encoded commands
// with their dbs, and the batches' positions.
type keepWriter struct{ ops []string }

func (k *keepWriter) Submit(_ context.Context, b *writer.Batch) error {
	for i := range b.Len() {
		enc, db := b.Command(i)
		k.ops = append(k.ops, fmt.Sprintf("db %d: %q", db, enc))
	}
	k.ops = append(k.ops, fmt.Sprintf("pos %d %d %d", b.Pos.Seq, b.Pos.Offset, b.Pos.DB))
	return nil
}

// rawSink counts the commands passed through.
type rawSink struct {
	target.Sink
	raw int
}

func (s *rawSink) AddRaw(ctx context.Context, db int, c *router.Command, raw []byte) error {
	s.raw++
	return s.Sink.AddRaw(ctx, db, c, raw)
}

// TestRawPassThrough: applying a stream with the source's encoding passed
// through (resp.Reader.Raw) puts exactly the bytes into the batches that
// re-encoding the parsed commands does, for commands the Applier passes
// as they are and for the ones it rewrites (filter, db_map, RESTORE).
func TestRawPassThrough(t *testing.T) {
	var in []byte
	cmd := func(args ...string) { in = resp.AppendCommandStrings(in, args...) }
	cmd("SELECT", "0")
	for i := range 40 {
		k := fmt.Sprintf("key:%d", i)
		cmd("SET", k, "v\r\nx")
		cmd("DEL", k, "skip:"+k, "other:"+k)
		cmd("INCR", "skip:"+k)
		cmd("HSET", "h", k, "")
		cmd("MOVE", k, "3")
		cmd("COPY", k, "dst", "DB", "3")
		cmd("SWAPDB", "0", "3")
		cmd("MULTI")
		cmd("LPUSH", "l", k)
		cmd("lpush", "l2", k)
		cmd("EXEC")
		cmd("PING")
		cmd("SELECT", "3")
		cmd("SET", k, "in db 3")
		cmd("SELECT", "0")
	}
	for _, tc := range []struct {
		name   string
		fenced bool
		dbMap  map[int]int
		filter conf.Filter
	}{
		{name: "plain", fenced: true},
		{name: "unfenced", fenced: false},
		{name: "db_map", fenced: true, dbMap: map[int]int{0: 1, 3: 4}},
		{name: "filter", fenced: true, filter: conf.Filter{BlockPrefixes: []string{"skip:"}}},
		{name: "filter and db_map", fenced: true, dbMap: map[int]int{3: 0, 0: 3}, filter: conf.Filter{BlockPrefixes: []string{"other:"}, BlockDBs: []int{5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [2][]string
			for pass, raw := range []bool{false, true} {
				f, err := filter.New(tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				if tc.filter.BlockPrefixes == nil && tc.filter.BlockDBs == nil {
					f = nil
				}
				kw := &keepWriter{}
				var seq atomic.Uint64
				sink := &rawSink{Sink: target.SingleSink(kw, 0, "", 7, 1<<20)}
				app := New(Config{Log: zerolog.Nop(), Table: router.Builtin(),
					Fenced: tc.fenced, Seq: &seq, Job: "test", DBMap: tc.dbMap, Filter: f})
				app.SetSink(sink)
				rr := resp.NewReader(bytes.NewReader(in), 1<<16)
				n := 0
				for {
					args, err := rr.ReadCommand()
					if err != nil {
						break
					}
					var enc []byte
					if raw {
						if enc = rr.Raw(); enc == nil {
							t.Fatalf("command %d not read in place", n)
						}
					}
					if err := app.Command(context.Background(), args, enc, rr.Consumed(), time.Time{}); err != nil {
						t.Fatal(err)
					}
					n++
				}
				if err := app.Sink().Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				if raw && sink.raw < n/3 {
					t.Errorf("%d of %d commands passed through", sink.raw, n)
				}
				t.Logf("raw=%v: %d commands, %d passed through, %d ops", raw, n, sink.raw, len(kw.ops))
				got[pass] = kw.ops
			}
			if len(got[0]) != len(got[1]) {
				t.Fatalf("%d ops re-encoded, %d passed through", len(got[0]), len(got[1]))
			}
			for i := range got[0] {
				if got[0][i] != got[1][i] {
					t.Fatalf("op %d: re-encoded %s, passed through %s", i, got[0][i], got[1][i])
				}
			}
		})
	}
}
