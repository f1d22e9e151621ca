package writer

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/router"
)

// foldAdd adds one command as a unit of its own, marked foldable when fold
// is set, and ends the unit as seq.
func foldAdd(b *Batch, db int, fold bool, seq uint64, args ...string) {
	b.AddStrings(db, args...)
	if fold {
		markFold(b, args...)
	}
	b.EndUnit(Position{Seq: seq, Offset: int64(seq) * 10})
}

// markFold marks the command just added as the router parses args, as a
// sink does.
func markFold(b *Batch, args ...string) {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	c, _ := router.Parse(bs)
	b.MarkFold(&c)
}

// foldOps renders a batch's commands as "seq:ARG ARG…" for comparison.
func foldOps(t *testing.T, b *Batch) []string {
	t.Helper()
	var out []string
	for i := range b.ops {
		args, err := resp.ParseCommand(b.op(i))
		if err != nil {
			t.Fatalf("command %d does not parse: %v (%q)", i, err, b.op(i))
		}
		var s []string
		for _, a := range args {
			s = append(s, string(a))
		}
		out = append(out, fmt.Sprintf("%d:%s", b.ops[i].seq, strings.Join(s, " ")))
	}
	return out
}

// checkOps fails t unless b's commands are want (as foldOps renders them).
func checkOps(t *testing.T, b *Batch, want []string) {
	t.Helper()
	if got := foldOps(t, b); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("folded batch:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBatchFolds: a run of foldable commands on one key, each a unit of
// its own, goes as one command holding every argument in order, numbered
// as its last unit; anything that differs — command, key, db, a command not
// marked, a unit of two commands — ends the run.
func TestBatchFolds(t *testing.T) {
	b := NewBatch()
	foldAdd(b, 0, true, 1, "LPUSH", "q", "a")
	foldAdd(b, 0, true, 2, "LPUSH", "q", "b", "c")
	foldAdd(b, 0, true, 3, "LPUSH", "q", "d")
	foldAdd(b, 0, true, 4, "RPUSH", "q", "e")      // another command
	foldAdd(b, 0, true, 5, "RPUSH", "q2", "f")     // another key
	foldAdd(b, 1, true, 6, "RPUSH", "q2", "g")     // another db
	foldAdd(b, 1, false, 7, "RPUSH", "q2", "h")    // not marked
	foldAdd(b, 1, true, 8, "RPUSH", "q2", "i")     // after one not marked
	foldAdd(b, 1, true, 9, "HSET", "h", "f1", "1") // another command again
	foldAdd(b, 1, true, 10, "HSET", "h", "f2", "2", "f1", "3")
	// A source transaction of two commands is one unit: it stays apart.
	b.AddStrings(1, "HSET", "h", "f3", "4")
	markFold(b, "HSET", "h", "f3", "4")
	b.AddStrings(1, "HSET", "h", "f4", "5")
	markFold(b, "HSET", "h", "f4", "5")
	b.EndUnit(Position{Seq: 11, Offset: 110})
	foldAdd(b, 1, true, 12, "HSET", "h", "f5", "6")
	want := []string{
		"3:LPUSH q a b c d",
		"4:RPUSH q e",
		"5:RPUSH q2 f",
		"6:RPUSH q2 g",
		"7:RPUSH q2 h",
		"8:RPUSH q2 i",
		"10:HSET h f1 1 f2 2 f1 3",
		"11:HSET h f3 4",
		"11:HSET h f4 5",
		"12:HSET h f5 6",
	}
	checkOps(t, b, want)
	if b.ops[0].off != 30 {
		t.Errorf("folded command's offset %d, want its last unit's (30)", b.ops[0].off)
	}
	if b.Size() != len(b.buf) || b.ops[len(b.ops)-1].end != len(b.buf) {
		t.Errorf("buffer %d bytes, last command ends at %d", len(b.buf), b.ops[len(b.ops)-1].end)
	}
	b.Release()
}

// TestBatchFoldsKeys: plain SETs and MSETs of many keys go as one MSET; DELs and UNLINKs of many keys as one DEL or UNLINK; a
// SET with an option, another command, another db or slot, or a SET whose
// encoding carries more than a key and a value ends the run.
func TestBatchFoldsKeys(t *testing.T) {
	b := NewBatch()
	foldAdd(b, 0, true, 1, "SET", "a", "1")
	foldAdd(b, 0, true, 2, "set", "b", "2")
	foldAdd(b, 0, true, 3, "SET", "a", "3") // the same key again: MSET sets in order
	foldAdd(b, 0, true, 4, "SET", "c", "4", "PX", "100")
	foldAdd(b, 0, true, 5, "SET", "d", "5")
	foldAdd(b, 0, true, 6, "MSET", "e", "6", "f", "7")
	foldAdd(b, 0, true, 7, "MSET", "g", "8")
	foldAdd(b, 0, true, 8, "DEL", "a")
	foldAdd(b, 0, true, 9, "DEL", "b", "c")
	foldAdd(b, 0, true, 10, "UNLINK", "d")
	foldAdd(b, 0, true, 11, "unlink", "e")
	foldAdd(b, 1, true, 12, "UNLINK", "f") // another db
	foldAdd(b, 1, true, 13, "SET", "g", "9")
	foldAdd(b, 1, true, 14, "MSET", "h", "10")
	// Marked as a plain SET, sent with more (as a rewrite might): the
	// count on the wire decides, so it stays a SET of its own.
	b.AddStrings(1, "SET", "i", "11", "PX", "5")
	markFold(b, "SET", "i", "11")
	b.EndUnit(Position{Seq: 15, Offset: 150})
	foldAdd(b, 1, true, 16, "SET", "j", "12")
	want := []string{
		"3:MSET a 1 b 2 a 3",
		"4:SET c 4 PX 100",
		"7:MSET d 5 e 6 f 7 g 8",
		"9:DEL a b c",
		"11:UNLINK d e",
		"12:UNLINK f",
		"14:MSET g 9 h 10",
		"15:SET i 11 PX 5",
		"16:SET j 12",
	}
	checkOps(t, b, want)
	// An error that names a folded command says it is a run of the
	// source's: MSET refused to a user allowed SET is no puzzle then.
	for i, d := range []string{
		`MSET "a" (db 0; 3 source commands joined, see fold)`,
		`SET "c" (db 0)`,
		`MSET "d" (db 0; 3 source commands joined, see fold)`,
		`DEL "a" (db 0; 2 source commands joined, see fold)`,
	} {
		if got := b.Describe(i); got != d {
			t.Errorf("Describe(%d) = %s, want %s", i, got, d)
		}
	}
	b.Release()

	// On a cluster target only commands of one slot join.
	b = NewBatch()
	for i, slot := range []int{7, 7, 9, 9, 7} {
		args := []string{"SET", "k" + strconv.Itoa(i), "v"}
		b.AddSlot(slot, []byte(args[0]), []byte(args[1]), []byte(args[2]))
		markFold(b, args...)
		b.EndUnit(Position{Seq: uint64(i + 1)})
	}
	checkOps(t, b, []string{"2:MSET k0 v k1 v", "4:MSET k2 v k3 v", "5:SET k4 v"})
	if d := b.Describe(0); d != `MSET "k0" (slot 7; 2 source commands joined, see fold)` {
		t.Errorf("Describe(0) = %s", d)
	}
	b.Release()
}

// TestBatchFoldGrowsCount: the array header gains a digit as the run
// passes 9 and 99 arguments; the command stays whole and in order.
func TestBatchFoldGrowsCount(t *testing.T) {
	b := NewBatch()
	b.AddStrings(0, "SET", "before", "x")
	b.EndUnit(Position{Seq: 1})
	want := []string{"SADD", "s"}
	for i := range 150 {
		m := "m" + strconv.Itoa(i)
		foldAdd(b, 0, true, uint64(i+2), "SADD", "s", m)
		want = append(want, m)
	}
	got := foldOps(t, b)
	if len(got) != 2 || got[0] != "1:SET before x" || got[1] != "151:"+strings.Join(want, " ") {
		t.Errorf("batch %q", got)
	}
	b.Release()
}

// TestBatchFoldStopsAtCut: a marker records the position at a transaction
// cut, so no later unit joins the command before it; and a folded command
// stays under foldBytes.
func TestBatchFoldStopsAtCut(t *testing.T) {
	b := NewBatch()
	for i := range txnOps - 1 {
		foldAdd(b, 0, false, uint64(i+1), "INCR", "c"+strconv.Itoa(i))
	}
	foldAdd(b, 0, true, txnOps, "LPUSH", "q", "a") // the cut falls after this one
	foldAdd(b, 0, true, txnOps+1, "LPUSH", "q", "b")
	foldAdd(b, 0, true, txnOps+2, "LPUSH", "q", "c")
	if len(b.cuts) != 1 || b.cuts[0].n != txnOps || b.cuts[0].pos.Seq != txnOps {
		t.Fatalf("cuts %+v, want one after unit %d", b.cuts, txnOps)
	}
	got := foldOps(t, b)
	if len(got) != txnOps+1 || got[txnOps-1] != fmt.Sprintf("%d:LPUSH q a", txnOps) || got[txnOps] != fmt.Sprintf("%d:LPUSH q b c", txnOps+2) {
		t.Errorf("around the cut: %q", got[txnOps-1:])
	}
	b.Release()

	b = NewBatch()
	v := strings.Repeat("v", 1000)
	for i := range 40 {
		foldAdd(b, 0, true, uint64(i+1), "RPUSH", "big", v)
	}
	for i := range b.ops {
		if n := b.opLen(i); n > foldBytes {
			t.Errorf("command %d is %d bytes, over foldBytes", i, n)
		}
	}
	if b.Len() < 3 || b.Len() > 4 {
		t.Errorf("40 pushes of 1 KB in %d commands, want 3", b.Len())
	}
	b.Release()
}

// TestBatchFoldTruncate: an unfinished unit dropped after a fold leaves the
// folded command as its units made it.
func TestBatchFoldTruncate(t *testing.T) {
	b := NewBatch()
	foldAdd(b, 0, true, 1, "LPUSH", "q", "a")
	foldAdd(b, 0, true, 2, "LPUSH", "q", "b")
	b.AddStrings(0, "LPUSH", "q", "c") // a unit that never ends
	markFold(b, "LPUSH", "q", "c")
	b.Truncate(1)
	if got := foldOps(t, b); len(got) != 1 || got[0] != "2:LPUSH q a b" {
		t.Errorf("after Truncate: %q", got)
	}
	b.Release()
}
