package writer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/router"
)

// BenchmarkFence applies the bench's load mix (SET, LPUSH, INCR, HSET on
// random keys) to a real redis-server, fenced and unfenced, standalone and
// as a cluster master's writer (every slot on one server, so the server
// runs the same commands in both modes). The unfenced rate is the anchor.
func BenchmarkFence(b *testing.B) {
	for _, slotted := range []bool{false, true} {
		for _, fence := range []bool{false, true} {
			name := fmt.Sprintf("slotted=%v/fence=%v", slotted, fence)
			b.Run(name, func(b *testing.B) { benchFence(b, slotted, fence, 512) })
		}
	}
}

// BenchmarkFenceSmallBatches is BenchmarkFence (standalone, fenced) with
// the small batches a consumer's idle flush cuts under a steady load.
func BenchmarkFenceSmallBatches(b *testing.B) {
	benchFence(b, false, true, 32)
}

func benchFence(b *testing.B, slotted, fence bool, batchOps int) {
	var args []string
	if slotted {
		args = []string{"--cluster-enabled", "yes"}
	}
	srv := redistest.Start(b, args...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if slotted {
		c := srv.Client(b)
		for lo := 0; lo < 16384; lo += 4096 {
			var s []any
			for i := lo; i < lo+4096; i++ {
				s = append(s, i)
			}
			if err := c.Do(ctx, append([]any{"CLUSTER", "ADDSLOTS"}, s...)...).Err(); err != nil {
				b.Fatal(err)
			}
		}
		redistest.WaitFor(b, 10*time.Second, func() bool {
			v, _ := c.Do(ctx, "CLUSTER", "INFO").Text()
			return len(v) > 0 && contains(v, "cluster_state:ok")
		}, "cluster ok")
	}
	cfg := Config{
		Name:        "ferry-bench",
		Dial:        dial.Options{Addr: srv.Addr},
		MarkerKey:   "__ferry:bench:pos",
		Fence:       fence,
		Slotted:     slotted,
		Log:         zerolog.Nop(),
		MaxInflight: 16 << 20,
	}
	if slotted {
		cfg.MaxQueued = 32 << 20
		cfg.SlotMarker = func(slot int) string { return "__ferry:{" + router.TagForSlot(slot) + "}:bench" }
		cfg.StreamMarker = func(int) string { return "__ferry:{" + router.TagForSlot(0) + "}:bench:s0" }
	}
	w := New(cfg)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	rng := rand.New(rand.NewPCG(1, 2))
	var seq uint64
	var off int64
	b.ResetTimer()
	for n := 0; n < b.N; {
		bt := NewBatch()
		for i := 0; i < batchOps && n < b.N; i, n = i+1, n+1 {
			k := fmt.Sprintf("key:%012d", rng.IntN(1000000))
			var cmd [][]byte
			switch n % 4 {
			case 0:
				cmd = [][]byte{[]byte("SET"), []byte(k), []byte("xxx")}
			case 1:
				k = "mylist"
				cmd = [][]byte{[]byte("LPUSH"), []byte(k), []byte("xxx")}
			case 2:
				k = "counter:" + k
				cmd = [][]byte{[]byte("INCR"), []byte(k)}
			default:
				cmd = [][]byte{[]byte("HSET"), []byte("myhash"), []byte(k), []byte("xxx")}
				k = "myhash"
			}
			if slotted {
				bt.AddSlot(router.Slot([]byte(k)), cmd...)
			} else {
				bt.Add(0, cmd...)
			}
			seq++
			off += 40
			bt.EndUnit(Position{Seq: seq, Offset: off})
		}
		bt.Pos = Position{Seq: seq, State: StateLive, ReplID: "0123456789012345678901234567890123456789", Offset: off, Low: -1}
		if err := w.Submit(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
	b.ReportMetric(float64(b.N)/float64(max(1, w.Stats().Groups)), "cmds/group")
	cancel()
	<-done
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
