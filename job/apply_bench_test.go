package job

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/resp"
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

// BenchmarkStreamApply is the stream consumer's loop without the spool and
// the writer: read a command, apply it (standalone target, no filter), batch
// it, and publish the position, as stream.stream does.
func BenchmarkStreamApply(b *testing.B) {
	const n = 4096
	data := benchStream(n)
	dw := &discardWriter{}
	var seq atomic.Uint64
	app := &applier{
		stream:  0,
		out:     target.SingleSink(dw, 0, "", 512, 16<<20),
		log:     zerolog.Nop(),
		table:   builtinCommands(),
		fenced:  true,
		seq:     &seq,
		jobName: "bench",
	}
	s := &stream{app: app}
	ctx := context.Background()
	src := bytes.NewReader(data)
	rr := resp.NewReader(src, 1<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(data)
		rr.Bufio().Reset(src)
		base := app.offset - rr.Consumed()
		for range n {
			args, err := rr.ReadCommand()
			if err != nil {
				b.Fatal(err)
			}
			end := base + rr.Consumed()
			app.raw = rr.Raw()
			if err := app.command(ctx, args, end); err != nil {
				b.Fatal(err)
			}
			app.raw = nil
			s.tookCommand(end)
			app.moves.applied(0, app.recv)
		}
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "cmds/s")
	if dw.ops == 0 {
		b.Fatal("nothing submitted")
	}
}
