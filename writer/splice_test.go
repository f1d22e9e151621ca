package writer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/resp"
)

// splicedBatch is a batch of SET a, a spliced SET big (value: the body's
// pieces), SET b, each its own unit; flat is the same batch with the big
// SET copied into the buffer. freed counts the body's releases.
func splicedBatch(slot int, body []string, freed *int) (spliced, flat *Batch) {
	val := strings.Join(body, "")
	var pieces [][]byte
	for _, p := range body {
		pieces = append(pieces, []byte(p))
	}
	spliced, flat = NewBatch(), NewBatch()
	for i, b := range []*Batch{spliced, flat} {
		b.AddEncoded(0, slot, resp.AppendCommandStrings(nil, "SET", "a", "v"))
		b.EndUnit(Position{Seq: 1, State: StateLive, ReplID: "r", Offset: 10})
		if i == 0 {
			head := fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n", len(val))
			b.AddIdempotentSpliced(0, slot, Spliced{Head: head, Tail: []byte("\r\n"), Body: pieces, Release: func() { *freed++ }})
		} else {
			if err := b.AddIdempotent(0, slot, func(dst []byte) ([]byte, error) {
				return resp.AppendCommandStrings(dst, "SET", "big", val), nil
			}); err != nil {
				panic(err)
			}
		}
		b.EndUnit(Position{Seq: 2, State: StateLive, ReplID: "r", Offset: 20})
		b.AddEncoded(0, slot, resp.AppendCommandStrings(nil, "SET", "b", "v"))
		b.EndUnit(Position{Seq: 3, State: StateLive, ReplID: "r", Offset: 30})
		b.Pos = Position{Seq: 3, State: StateLive, ReplID: "r", Offset: 300}
	}
	return spliced, flat
}

// TestSplicedOp: a command whose middle the batch does not copy goes out
// byte for byte as the same command copied whole — fenced or not, on a
// standalone or a cluster target — counts its middle in the batch's size,
// is copied whole where it is taken out of the batch (sent again without
// others, re-routed, named in an error), and its middle is released exactly
// once: with the batch, or when a truncation drops it.
func TestSplicedOp(t *testing.T) {
	body := []string{"x", strings.Repeat("y", 5000), "", "zz"}
	for _, fence := range []bool{true, false} {
		for _, slotted := range []bool{false, true} {
			slot := -1
			p := &planner{marker: "m", fence: fence}
			if slotted {
				slot = 5
				p = &planner{slotted: true, fence: fence,
					slotMarker:   func(slot int) string { return fmt.Sprintf("slot:%d", slot) },
					streamMarker: func(stream int) string { return fmt.Sprintf("stream:%d", stream) }}
			}
			freed := 0
			sb, fb := splicedBatch(slot, body, &freed)
			if sb.Size() != fb.Size() || sb.Len() != 3 || sb.replayable() != fb.replayable() {
				t.Fatalf("size %d, %d ops, replayable %v; the flat batch: %d, replayable %v", sb.Size(), sb.Len(), sb.replayable(), fb.Size(), fb.replayable())
			}
			got, want := render(planFlight([]*Batch{sb}, p), slotted), render(planFlight([]*Batch{fb}, p), slotted)
			if got != want {
				t.Errorf("fence=%v slotted=%v: wire\n got %q\nwant %q", fence, slotted, clipKey([]byte(got)), clipKey([]byte(want)))
			}
			if enc, _ := sb.Command(1); string(enc) != string(fb.op(1)) {
				t.Errorf("Command(1) is not the whole command")
			}
			if d := sb.Describe(1); !strings.HasPrefix(d, `SET "big"`) {
				t.Errorf("Describe(1) = %q", d)
			}
			if o := sb.takeOp(1); string(o.Enc) != string(fb.op(1)) {
				t.Errorf("takeOp(1) is not the whole command")
			}
			nb := sb.without(func(i int) bool { return i == 0 })
			if got, want := render(planFlight([]*Batch{nb}, p), slotted), render(planFlight([]*Batch{fb.without(func(i int) bool { return i == 0 })}, p), slotted); got != want {
				t.Errorf("fence=%v slotted=%v: without the first command, wire\n got %q\nwant %q", fence, slotted, clipKey([]byte(got)), clipKey([]byte(want)))
			}
			nb.Release()
			if freed != 0 {
				t.Fatalf("the body was released %d times before its batch", freed)
			}
			sb.Release()
			if freed != 1 {
				t.Errorf("released %d times with its batch, want 1", freed)
			}
		}
	}

	freed := 0
	sb, _ := splicedBatch(-1, body, &freed)
	size := sb.Size()
	sb.Truncate(2)
	if freed != 0 || sb.Size() != size-len(set("b")) {
		t.Errorf("Truncate(2): released %d times, size %d; want 0 and %d", freed, sb.Size(), size-len(set("b")))
	}
	sb.Truncate(1)
	if freed != 1 || sb.Size() != len(set("a")) {
		t.Errorf("Truncate(1): released %d times, size %d; want 1 and %d", freed, sb.Size(), len(set("a")))
	}
	sb.Release()
	if freed != 1 {
		t.Errorf("released %d times in all, want 1", freed)
	}
	if nb := NewBatch(); nb.Size() != 0 || len(nb.splices) != 0 {
		t.Errorf("a recycled batch holds %d spliced bytes", nb.Size())
	}
}

// TestSplicedCuts: a spliced command's middle counts toward the bytes after
// which a fenced flight ends one transaction and begins the next.
func TestSplicedCuts(t *testing.T) {
	b := NewBatch()
	b.AddIdempotentSpliced(0, -1, Spliced{Head: fmt.Appendf(nil, "*2\r\n$3\r\nGET\r\n$%d\r\n", txnBytes), Tail: []byte("\r\n"), Body: [][]byte{make([]byte, txnBytes)}})
	b.EndUnit(Position{Seq: 1})
	if len(b.cuts) != 1 || b.cuts[0].n != 1 {
		t.Errorf("cuts %+v, want one after the spliced command", b.cuts)
	}
	b.Release()
}
