package router

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestSlotMatchesServer(t *testing.T) {
	c := startRedis(t, true)
	ctx := context.Background()
	keys := [][]byte{
		{}, []byte("a"), []byte("b"), []byte("{}"), []byte("{"), []byte("}"), []byte("}{a}"),
		[]byte("{a"), []byte("a}"), []byte("{}a"), []byte("a{}"), []byte("{}{a}"), []byte("{{a}}"),
		[]byte("a{b}c{d}"), []byte("{b}"), []byte("x{b}y"), []byte("{user1000}.following"),
		[]byte("foo{}{bar}"), []byte("foo{{bar}}zap"), []byte("foo{bar}{zap}"),
		[]byte("\x00"), []byte("\xff{\x00}\xfe"), []byte("{\xff\xfe}"), []byte("123456789"),
	}
	rng := rand.New(rand.NewPCG(7, 7))
	alphabet := []byte("ab{}\x00\xff01")
	for range 2000 {
		k := make([]byte, rng.IntN(24))
		for i := range k {
			if rng.IntN(2) == 0 {
				k[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				k[i] = byte(rng.IntN(256))
			}
		}
		keys = append(keys, k)
	}
	pipe := c.Pipeline()
	for _, k := range keys {
		pipe.Do(ctx, "CLUSTER", "KEYSLOT", k)
	}
	res, err := pipe.Exec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		want, err := res[i].(*redis.Cmd).Int64()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT %q: %v", k, err)
		}
		if got := Slot(k); int64(got) != want {
			t.Errorf("Slot(%q) = %d, server %d", k, got, want)
		}
		if got := SlotString(string(k)); int64(got) != want {
			t.Errorf("SlotString(%q) = %d, server %d", k, got, want)
		}
	}
	// The reference value of the Redis Cluster specification.
	if s := crc16([]byte("123456789")); s != 0x31C3 {
		t.Errorf("crc16(123456789) = %#x", s)
	}
}

func TestTagForSlot(t *testing.T) {
	longest := 0
	for s := range SlotCount {
		tag := TagForSlot(s)
		if tag == "" || Slot([]byte(tag)) != s || SlotString("__ferry:{"+tag+"}:fence") != s {
			t.Fatalf("TagForSlot(%d) = %q (slot %d)", s, tag, Slot([]byte(tag)))
		}
		longest = max(longest, len(tag))
	}
	if longest > 3 {
		t.Errorf("longest tag %d bytes", longest)
	}
	if TagForSlot(15495) != "a" {
		t.Errorf("TagForSlot(15495) = %q, want the shortest, \"a\"", TagForSlot(15495))
	}
	if n := testing.AllocsPerRun(100, func() { TagForSlot(42) }); n != 0 {
		t.Errorf("TagForSlot allocates %v", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("TagForSlot(16384) did not panic")
		}
	}()
	TagForSlot(SlotCount)
}

func TestSplitBySlot(t *testing.T) {
	str := func(p []Part) (out [][]string) {
		for _, x := range p {
			var a []string
			for _, b := range x.Args {
				a = append(a, string(b))
			}
			out = append(out, a)
		}
		return out
	}
	// Slots: a 15495, b 3300, c 7365.
	for _, tc := range []struct {
		in    string
		slots []int
		want  [][]string
	}{
		{"DEL a b c {a}x", []int{15495, 3300, 7365}, [][]string{{"DEL", "a", "{a}x"}, {"DEL", "b"}, {"DEL", "c"}}},
		{"unlink b {b}1 {b}2", []int{3300}, [][]string{{"unlink", "b", "{b}1", "{b}2"}}},
		{"MSET a 1 b 2 c 3 {a} 4 b 5", []int{15495, 3300, 7365},
			[][]string{{"MSET", "a", "1", "{a}", "4"}, {"MSET", "b", "2", "b", "5"}, {"MSET", "c", "3"}}},
		{"EXISTS c a", []int{7365, 15495}, [][]string{{"EXISTS", "c"}, {"EXISTS", "a"}}},
		{"TOUCH a a", []int{15495}, [][]string{{"TOUCH", "a", "a"}}},
		{"SET a 1", []int{15495}, [][]string{{"SET", "a", "1"}}},
		{"RENAME {b}x b", []int{3300}, [][]string{{"RENAME", "{b}x", "b"}}},
		{"FLUSHALL", []int{NoSlot}, [][]string{{"FLUSHALL"}}},
		{"EVAL s 0", []int{NoSlot}, [][]string{{"EVAL", "s", "0"}}},
	} {
		a := args(tc.in)
		parts, err := SplitBySlot(a)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		var slots []int
		for _, p := range parts {
			slots = append(slots, p.Slot)
		}
		if !slices.Equal(slots, tc.slots) || !slices.EqualFunc(str(parts), tc.want, slices.Equal) {
			t.Errorf("%s: slots %v parts %q, want %v %q", tc.in, slots, str(parts), tc.slots, tc.want)
		}
		if len(parts) == 1 && &parts[0].Args[0] != &a[0] {
			t.Errorf("%s: a single part is a copy", tc.in)
		}
		if len(parts) > 1 {
			// Parts must not share a backing array: appending to one must not
			// clobber the next.
			for i := range parts {
				parts[i].Args = append(parts[i].Args, []byte("X"))
			}
			for i, p := range parts {
				if !slices.Equal(str([]Part{{Args: p.Args[:len(p.Args)-1]}})[0], tc.want[i]) {
					t.Errorf("%s: part %d clobbered: %q", tc.in, i, p.Args)
				}
			}
		}
	}
	for in, want := range map[string]string{
		"RENAME a b":                   `CROSSSLOT: RENAME "a" "b" spans slots 15495 and 3300: cannot apply atomically on a cluster`,
		"MSETNX a 1 b 2":               `CROSSSLOT: MSETNX "a" "b" spans slots 15495 and 3300: cannot keep MSETNX all-or-nothing on a cluster`,
		"SINTERSTORE a {a}b c":         `CROSSSLOT: SINTERSTORE "a" "c" spans slots 15495 and 7365: cannot apply atomically on a cluster`,
		"ZUNIONSTORE b 2 {b} a":        `CROSSSLOT: ZUNIONSTORE "b" "a" spans slots 3300 and 15495: cannot apply atomically on a cluster`,
		"SORT a BY x STORE b":          `CROSSSLOT: SORT "a" "b" spans slots 15495 and 3300: cannot apply atomically on a cluster`,
		"EVAL s 2 a b":                 `CROSSSLOT: EVAL "a" "b" spans slots 15495 and 3300: cannot apply atomically on a cluster`,
		"XREAD STREAMS a b 0 0":        `CROSSSLOT: XREAD "a" "b" spans slots 15495 and 3300: cannot apply atomically on a cluster`,
		"PFMERGE a b":                  `CROSSSLOT: PFMERGE "a" "b" spans slots 15495 and 3300: cannot apply atomically on a cluster`,
		"GEORADIUS a 1 2 3 km STORE b": `CROSSSLOT: GEORADIUS "a" "b" spans slots 15495 and 3300: cannot apply atomically on a cluster`,
	} {
		_, err := SplitBySlot(args(in))
		var ce *CrossSlotError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCrossSlot) || err.Error() != want {
			t.Errorf("%s: %v, want %s", in, err, want)
		}
	}
	if _, err := SplitBySlot(args("NOSUCH a")); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("NOSUCH: %v", err)
	}
	// SlotOf: one slot, or a CrossSlotError that says whether to split.
	if s, k, err := SlotOf(args("DEL a {a}b")); s != 15495 || k != KeyedSplittable || err != nil {
		t.Errorf("SlotOf DEL a {a}b: %d %v %v", s, k, err)
	}
	_, _, err := SlotOf(args("DEL a b"))
	var ce *CrossSlotError
	if !errors.As(err, &ce) || !ce.Splittable {
		t.Errorf("SlotOf DEL a b: %v", err)
	}
	long := []byte("x{b}" + string(make([]byte, 100)))
	_, _, err = SlotOf([][]byte{[]byte("RENAME"), []byte("a"), long})
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("long key: %v", err)
	}
}
