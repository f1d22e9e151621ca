package router

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestCommandValues parses a sample of every command and subcommand of the
// table and checks the parsed value against its entry: name, flags, what the
// filter reads, kind, slot (cached), parts and db arguments.
func TestCommandValues(t *testing.T) {
	samples := map[string][][]byte{}
	for _, s := range corpus {
		if c, err := Parse(args(s)); err == nil {
			samples[c.Name] = args(s)
		}
	}
	for s := range corpusNewer {
		if c, err := Parse(args(s)); err == nil {
			samples[c.Name] = args(s)
		}
	}
	for _, s := range allSpecs() {
		a, ok := samples[s.name]
		if !ok {
			for _, w := range strings.Fields(s.name) {
				a = append(a, []byte(w))
			}
			for len(a) < int(max(s.arity, -s.arity)) {
				a = append(a, []byte("1"))
			}
		}
		c, err := Parse(a)
		if err != nil {
			t.Errorf("%s: %q: %v", s.name, a, err)
			continue
		}
		if c.Name != s.name || c.Flags != s.flags || c.Err() != nil {
			t.Errorf("%q: name %s flags %b err %v; table %s %b", a, c.Name, c.Flags, c.Err(), s.name, s.flags)
		}
		if c.Type() != s.typ || c.Reads() != s.in || c.Shape() != s.shape {
			t.Errorf("%s: type %b reads %b shape %d; table %b %b %d", s.name, c.Type(), c.Reads(), c.Shape(), s.typ, s.in, s.shape)
		}
		switch {
		case len(c.Keys) == 0:
			if c.Kind != Keyless {
				t.Errorf("%s: no keys, kind %v", s.name, c.Kind)
			}
		case c.Has(Splittable) != (c.Kind == KeyedSplittable):
			t.Errorf("%s: kind %v, flags %b", s.name, c.Kind, c.Flags)
		}
		want, slots := NoSlot, map[int]bool{}
		for i := range c.Keys {
			slots[Slot(c.Key(i))] = true
			if i == 0 {
				want = Slot(c.Key(0))
			}
		}
		for range 2 { // the second call reads the cache
			slot, err := c.Slot()
			var cs *CrossSlotError
			switch {
			case len(slots) > 1 && (!errors.As(err, &cs) || cs.Splittable != c.Has(Splittable)):
				t.Errorf("%q: slot %d %v, want a CROSSSLOT error", a, slot, err)
			case len(slots) <= 1 && (err != nil || slot != want):
				t.Errorf("%q: slot %d %v, want %d", a, slot, err, want)
			}
		}
		parts, err := c.Parts()
		switch {
		case len(slots) <= 1:
			if err != nil || len(parts) != 1 || parts[0].Slot != want || &parts[0].Args[0] != &a[0] {
				t.Errorf("%q: parts %v %v", a, parts, err)
			}
		case c.Has(Splittable):
			n := 0
			for _, p := range parts {
				n += len(p.Args) - 1
			}
			if err != nil || len(parts) != len(slots) || n != len(a)-1 {
				t.Errorf("%q: parts %v %v", a, parts, err)
			}
		default:
			if !errors.Is(err, ErrCrossSlot) {
				t.Errorf("%q: parts %v %v, want CROSSSLOT", a, parts, err)
			}
		}
		dbs := c.DBArgs()
		if c.Has(DBArg) != (dbs != nil) && !(c.Name == "COPY" && !slices.ContainsFunc(a, func(b []byte) bool { return is(b, "DB") })) {
			t.Errorf("%q: db args %v, flags %b", a, dbs, c.Flags)
		}
		for _, i := range dbs {
			if _, err := strconv.Atoi(string(a[i])); err != nil {
				t.Errorf("%q: db arg %d is %q", a, i, a[i])
			}
		}
		if c.Shape() == ShapeSplit && c.Step() != map[bool]int{true: 2, false: 1}[strings.HasPrefix(s.name, "MSET")] {
			t.Errorf("%s: step %d", s.name, c.Step())
		}
	}
}

func TestCommandDBArgs(t *testing.T) {
	for _, tc := range []struct {
		sample string
		want   []int
	}{
		{"SELECT 3", []int{1}},
		{"SWAPDB 0 1", []int{1, 2}},
		{"MOVE k 2", []int{2}},
		{"COPY a b DB 4 REPLACE", []int{4}},
		{"COPY a b REPLACE", nil},
		{"SET k v", nil},
	} {
		c, err := Parse(args(tc.sample))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.DBArgs(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: db args %v, want %v", tc.sample, got, tc.want)
		}
	}
}

func TestCommandParts(t *testing.T) {
	a, b := "{"+TagForSlot(1)+"}", "{"+TagForSlot(2)+"}"
	c, _ := Parse(args("DEL " + a + "x " + b + "y " + a + "z"))
	if _, err := c.Slot(); !errors.Is(err, ErrCrossSlot) {
		t.Fatalf("slot: %v", err)
	}
	parts, err := c.Parts()
	if err != nil || len(parts) != 2 {
		t.Fatalf("parts %v %v", parts, err)
	}
	if parts[0].Slot != 1 || joined(parts[0].Args) != "DEL "+a+"x "+a+"z" || parts[1].Slot != 2 || joined(parts[1].Args) != "DEL "+b+"y" {
		t.Errorf("parts %v", parts)
	}
	c, _ = Parse(args("MSET " + a + "x 1 " + b + "y 2"))
	parts, _ = c.Parts()
	if len(parts) != 2 || joined(parts[1].Args) != "MSET "+b+"y 2" {
		t.Errorf("MSET parts %v", parts)
	}
	c, _ = Parse(args("RENAME " + a + "x " + b + "y"))
	if _, err := c.Parts(); !errors.Is(err, ErrCrossSlot) {
		t.Errorf("RENAME across slots: %v", err)
	}
}

func TestRefusedCommand(t *testing.T) {
	a := args("SET k")
	c, err := Parse(a)
	if err == nil || c.Err() != err || c.Name != "SET" || !c.Has(Write) || c.Kind != Invalid || &c.Args[0] != &a[0] {
		t.Fatalf("SET k: %+v %v", c, err)
	}
	if _, err := c.Parts(); err != c.Err() {
		t.Errorf("parts of a refused command: %v", err)
	}
	c, err = Parse(args("JSON.SET k $ 1"))
	if !errors.Is(err, ErrUnknownCommand) || c.Name != "" || len(c.Args) != 4 {
		t.Fatalf("JSON.SET: %+v %v", c, err)
	}
	if _, err := c.Slot(); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("slot of an unknown command: %v", err)
	}
}

func joined(a [][]byte) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = string(x)
	}
	return strings.Join(s, " ")
}

// TestFoldFlags: a ZADD of score-member pairs is Fold, one with an option
// before its first score is not; a SET of a key and a value is FoldKeys
// (its run is one MSET), one with an option is not; DEL, UNLINK and MSET
// are FoldKeys.
func TestFoldFlags(t *testing.T) {
	for _, c := range []struct {
		args string
		fold Flag
	}{
		{"ZADD z 1 a", Fold},
		{"zadd z 1 a 2 b", Fold},
		{"ZADD z -inf a", Fold},
		{"ZADD z NX 1 a", 0},
		{"ZADD z xx 1 a", 0},
		{"ZADD z GT CH 1 a", 0},
		{"ZADD z INCR 1 a", 0},
		{"ZADD z LT 1 a", 0},
		{"SADD s a", Fold},
		{"SET k v", FoldKeys},
		{"set k v", FoldKeys},
		{"SET k v EX 10", 0},
		{"SET k v KEEPTTL", 0},
		{"SET k v NX", 0},
		{"SET k v GET", 0},
		{"MSET a 1 b 2", FoldKeys},
		{"DEL a b", FoldKeys},
		{"UNLINK a", FoldKeys},
		{"MSETNX a 1", 0},
		{"INCR c", 0},
	} {
		cmd, err := Parse(args(c.args))
		if err != nil {
			t.Fatalf("%s: %v", c.args, err)
		}
		if got := cmd.Flags & (Fold | FoldKeys); got != c.fold {
			t.Errorf("%s: fold flags %b, want %b", c.args, got, c.fold)
		}
	}
}
