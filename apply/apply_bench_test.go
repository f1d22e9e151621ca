package apply

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/target"
	"github.com/ferry-dev/ferry/writer"
)

// discardWriter takes batches and recycles them at once.
type discardWriter struct{ batches, ops int }

func (d *discardWriter) Submit(_ context.Context, b *writer.Batch) error {
	d.batches++
	d.ops += b.Len()
	b.Release()
	return nil
}

// benchStream returns n commands shaped like the bench's steady load
// (redis-benchmark -t set,lpush,incr,hset) as a master sends them.
func benchStream(n int) []byte {
	var b []byte
	val := []byte("xxx")
	for i := range n {
		k := []byte(fmt.Sprintf("key:%012d", i*7919%1000000))
		switch i % 4 {
		case 0:
			b = resp.AppendCommand(b, []byte("SET"), k, val)
		case 1:
			b = resp.AppendCommand(b, []byte("LPUSH"), []byte("mylist"), val)
		case 2:
			b = resp.AppendCommand(b, []byte("INCR"), []byte("counter:"+string(k[4:])))
		default:
			b = resp.AppendCommand(b, []byte("HSET"), []byte("myhash"), []byte("element:"+string(k[4:])), val)
		}
	}
	return b
}

// benchKnown is what a target that knows the stream's commands says of
// them (its COMMAND reply, cut to those): as in a job, every command is
// checked against it.
func benchKnown(b *testing.B) *router.Known {
	var reply []any
	for _, c := range []struct {
		name  string
		arity int64
	}{{"set", -3}, {"lpush", -3}, {"incr", 2}, {"hset", -4}, {"select", 2}, {"multi", 1}, {"exec", 1}, {"ping", -1}} {
		reply = append(reply, []any{c.name, c.arity, []any{"write"}, int64(1), int64(1), int64(1)})
	}
	k, err := router.KnownCommands(reply)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// BenchmarkStreamApply is the stream consumer's loop without the spool and
// the writer: read a command, apply it (standalone target, no filter, the
// target's commands known), batch it, and publish the position, as the
// job's consumer does.
func BenchmarkStreamApply(b *testing.B) {
	const n = 4096
	data := benchStream(n)
	dw := &discardWriter{}
	var seq atomic.Uint64
	app := New(Config{Log: zerolog.Nop(), Table: router.Builtin(), Known: benchKnown(b), Fenced: true, Seq: &seq, Job: "bench"})
	app.SetSink(target.SingleSink(dw, 0, "", 512, 16<<20))
	ctx := context.Background()
	src := bytes.NewReader(data)
	rr := resp.NewReader(src, 1<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(data)
		rr.Bufio().Reset(src)
		base := app.Offset() - rr.Consumed()
		now := time.Now()
		for i := range n {
			args, err := rr.ReadCommand()
			if err != nil {
				b.Fatal(err)
			}
			// The receive time comes with the frame (Frames.TimeAt): no
			// clock reading per command here either.
			if err := app.Command(ctx, args, rr.Raw(), base+rr.Consumed(), now); err != nil {
				b.Fatal(err)
			}
			if i%64 == 0 {
				app.PublishDataEnd() // as the consumer does (job's stream.publish)
			}
			app.Moves().Applied(0, now)
		}
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "cmds/s")
	if dw.ops == 0 {
		b.Fatal("nothing submitted")
	}
}
