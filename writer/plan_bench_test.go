package writer

import (
	"fmt"
	"testing"

	"github.com/ferry-dev/ferry/router"
)

// BenchmarkPlanFlight plans and lays out the flight a fenced standalone
// writer sends under the bench's steady load (three batches, ~360 commands,
// cut into transactions of txnOps) and retires it: the sender's and the
// reply reader's share of every flight, without the socket.
func BenchmarkPlanFlight(b *testing.B) {
	p := newPlanner(&Config{Fence: true, MarkerKey: "__ferry:bench:pos"})
	var bs []*Batch
	var seq uint64
	for range 3 {
		bt := NewBatch()
		for i := range 120 {
			bt.Add(0, []byte("SET"), []byte(fmt.Sprintf("key:%012d", i)), []byte("xxx"))
			seq++
			bt.EndUnit(Position{Seq: seq, Offset: int64(seq) * 40})
		}
		bt.Pos = Position{Seq: seq, State: StateLive, ReplID: "0123456789012345678901234567890123456789", Offset: int64(seq) * 40, Low: -1}
		bs = append(bs, bt)
	}
	wr := wire{markerDB: 0, curDB: 0}
	b.ReportAllocs()
	for b.Loop() {
		f := planFlight(bs, &p)
		wr.layout(f)
		f.release()
	}
}

// BenchmarkBatchFold adds runs of 3-byte LPUSHes to one key and of plain
// SETs of many keys, each a unit of its own, as a producer does under
// redis-benchmark's LPUSH and SET tests: ns per command added. A join
// must cost what its own bytes do, not what the run before it holds.
func BenchmarkBatchFold(b *testing.B) {
	for _, tc := range []struct {
		name string
		args func(i int) []string
	}{
		{"lpush", func(int) []string { return []string{"LPUSH", "mylist", "xxx"} }},
		{"set", func(i int) []string { return []string{"SET", fmt.Sprintf("key:%012d", i%100000), "xxx"} }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cmds := make([][][]byte, 4096)
			marks := make([]router.Command, len(cmds))
			for i := range cmds {
				for _, a := range tc.args(i) {
					cmds[i] = append(cmds[i], []byte(a))
				}
				marks[i], _ = router.Parse(cmds[i])
			}
			batch := NewBatch()
			for i := 0; b.Loop(); i++ {
				k := i % len(cmds)
				if k == 0 {
					batch.Release()
					batch = NewBatch()
				}
				batch.Add(0, cmds[k]...)
				batch.MarkFold(&marks[k])
				batch.EndUnit(Position{Seq: uint64(i + 1)})
			}
			batch.Release()
		})
	}
}
