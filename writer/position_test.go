package writer

import "testing"

func TestPositionRoundTrip(t *testing.T) {
	for _, p := range []Position{
		{Seq: 42, State: StateLive, ReplID: "8371b4fb1155b71f4a04d3e1bc3e18c4a990aeeb", Offset: 12345, DB: 3, Low: 12000},
		{Seq: 1, State: StateSnapshot, Offset: 0, Low: -1},
		{Seq: 7, State: StateDirty, ReplID: "x", Offset: 9, Low: 9},
	} {
		got, err := ParsePosition(p.Encode())
		if err != nil || got != p {
			t.Errorf("%+v → %q → %+v, %v", p, p.Encode(), got, err)
		}
	}
	// The six-field form of the first markers still reads (Low unknown).
	if p, err := ParsePosition("ferry1 5 live abc 10 0"); err != nil || p.Low != -1 || p.Offset != 10 {
		t.Errorf("old marker: %+v %v", p, err)
	}
	for _, bad := range []string{"", "ferry1 x live a 1 0", "ferry2 1 live a 1 0", "ferry1 1 weird a 1 0", "ferry1 1 live a 1"} {
		if _, err := ParsePosition(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestBatchTruncateAndWithout(t *testing.T) {
	b := NewBatch()
	b.Add(0, []byte("SET"), []byte("a"), []byte("1"))
	b.EndUnit(Position{Seq: 1, Offset: 10})
	b.Add(1, []byte("SET"), []byte("b"), []byte("2"))
	b.Add(1, []byte("SET"), []byte("c"), []byte("3"))
	b.Truncate(1) // an unfinished unit goes
	if b.Len() != 1 || b.Describe(0) != `SET "a" (db 0)` {
		t.Fatalf("after Truncate: %d ops, %s", b.Len(), b.Describe(0))
	}
	b.Add(2, []byte("DEL"), []byte("d"))
	b.EndUnit(Position{Seq: 2, Offset: 20})
	nb := b.without(func(i int) bool { return i == 0 })
	if nb.Len() != 1 || nb.Describe(0) != `DEL "d" (db 2)` || nb.ops[0].seq != 2 || nb.ops[0].off != 20 {
		t.Fatalf("without: %d ops, %s, unit %d/%d", nb.Len(), nb.Describe(0), nb.ops[0].seq, nb.ops[0].off)
	}
}
