// Package bench holds ferry's benchmark suite (run.sh, see README.md) and the
// micro-benchmarks of the hot paths no other package measures: RESP encoding,
// reading the replication stream, reading the writers' replies and building
// writer batches. rdb, spool and router have their own benchmarks.
//
//	go test -run '^$' -bench . -benchmem ./bench
package bench

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/writer"
)

// stream returns n commands shaped like redis-benchmark's set,lpush,incr,hset
// mix as a master sends them to a replica.
func stream(n int) []byte {
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

func BenchmarkAppendCommand(b *testing.B) {
	key, val := []byte("key:000000123456"), bytes.Repeat([]byte("v"), 100)
	buf := resp.AppendCommand(nil, []byte("SET"), key, val)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = resp.AppendCommand(buf[:0], []byte("SET"), key, val)
	}
}

func BenchmarkReadCommand(b *testing.B) {
	const n = 4096
	data := stream(n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	src := bytes.NewReader(data)
	r := resp.NewReader(src, 64<<10)
	for b.Loop() {
		src.Reset(data)
		r.Bufio().Reset(src)
		for range n {
			if _, err := r.ReadCommand(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "cmds/s")
}

// BenchmarkReadStatus reads the replies of fenced batches: +OK to MULTI,
// +QUEUED per command, then EXEC's array (512 replies and the marker's +OK).
func BenchmarkReadStatus(b *testing.B) {
	const ops = 512
	var data []byte
	data = append(data, "+OK\r\n"...)
	for range ops + 1 {
		data = append(data, "+QUEUED\r\n"...)
	}
	data = append(data, fmt.Sprintf("*%d\r\n", ops+1)...)
	for i := range ops {
		if i%4 == 2 {
			data = append(data, fmt.Sprintf(":%d\r\n", i)...)
		} else {
			data = append(data, "+OK\r\n"...)
		}
	}
	data = append(data, "+OK\r\n"...)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	src := bytes.NewReader(data)
	r := resp.NewReader(src, 64<<10)
	for b.Loop() {
		src.Reset(data)
		r.Bufio().Reset(src)
		for range ops + 3 {
			if _, _, err := r.ReadStatus(nil); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBatchBuild fills a writer batch the size of batch_max_ops with
// stream commands, one unit each, as the applier does.
func BenchmarkBatchBuild(b *testing.B) {
	const ops = 512
	data := stream(ops)
	var cmds [][][]byte
	r := resp.NewReader(bytes.NewReader(data), 64<<10)
	for range ops {
		args, err := r.ReadCommand()
		if err != nil {
			b.Fatal(err)
		}
		cp := make([][]byte, len(args))
		for i, a := range args {
			cp[i] = append([]byte(nil), a...)
		}
		cmds = append(cmds, cp)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		bt := writer.NewBatch()
		for i, c := range cmds {
			bt.Add(0, c...)
			bt.EndUnit(writer.Position{Seq: uint64(i + 1), Offset: int64(i + 1)})
		}
		bt.Release()
	}
}
