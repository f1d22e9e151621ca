package writer

import (
	"fmt"
	"testing"
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
