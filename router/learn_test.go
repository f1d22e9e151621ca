package router

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// serverCommands is the COMMAND reply of a real redis-server.
func serverCommands(t *testing.T) []any {
	t.Helper()
	c := startRedis(t, false)
	res, err := c.Do(context.Background(), "COMMAND").Slice()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// unexpressed are the commands whose key specs in Redis 7.0 do not say
// where all keys are (an incomplete or unknown spec): the built-in table
// finds them by parsing their options.
var unexpressed = map[string]bool{"SORT": true, "SORT_RO": true, "MIGRATE": true}

// TestLearnFromServer checks the key positions that the key specifications
// of a real Redis 7.0 give against the built-in table, for every command it
// knows: the corpus samples, and for each command without one, its name with
// the fewest arguments its arity allows.
func TestLearnFromServer(t *testing.T) {
	reply := serverCommands(t)
	learned, err := readReply(reply)
	if err != nil {
		t.Fatal(err)
	}
	server := newTable(learned, 0)
	samples := map[string][][]byte{}
	for _, s := range corpus {
		a := args(s)
		if c, err := Parse(a); err == nil {
			samples[c.Name] = a
			if _, ok := learnedSpec(server, c.Name); ok {
				compareKeys(t, server, a)
			}
		}
	}
	n := 0
	for _, s := range allSpecsOf(learned) {
		n++
		if _, ok := samples[s.name]; ok {
			continue
		}
		a := [][]byte{}
		for _, w := range strings.Fields(s.name) {
			a = append(a, []byte(w))
		}
		for len(a) < int(max(s.arity, -s.arity)) {
			a = append(a, []byte("1"))
		}
		compareKeys(t, server, a)
	}
	if n < 200 {
		t.Fatalf("the server described only %d commands", n)
	}
	t.Logf("%d commands and subcommands compared", n)

	// Learn keeps the built-in entries and adds none for a server the
	// built-in table covers.
	lt, err := Learn(Builtin(), reply)
	if err != nil {
		t.Fatal(err)
	}
	if lt.Learned() != 0 {
		t.Errorf("learned %d commands from a server the built-in table covers", lt.Learned())
	}
	k, err := KnownCommands(reply)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"SET k v", "xgroup createconsumer x g c", "FUNCTION LOAD code"} {
		if c, _ := lt.Parse(args(s)); !k.Knows(&c) {
			t.Errorf("%s: the server knows it", s)
		}
	}
	for _, s := range []string{"HSETEX h FIELDS 1 f v", "CLIENT NO-TOUCH ON", "JSON.SET k $ 1"} {
		if c, _ := lt.Parse(args(s)); k.Knows(&c) {
			t.Errorf("%s: Redis 7.0 does not know it", s)
		}
	}
}

func learnedSpec(t *Table, name string) (*spec, bool) {
	w := strings.Fields(name)
	s := t.cmds[w[0]]
	if s != nil && len(w) > 1 {
		s = s.subMap[w[1]]
	}
	return s, s != nil
}

func allSpecsOf(t table) []*spec {
	var out []*spec
	for _, s := range t {
		if s.subs == nil {
			out = append(out, s)
		}
		for j := range s.subs {
			out = append(out, &s.subs[j])
		}
	}
	return out
}

// compareKeys parses a with the server's key specs and the built-in table.
func compareKeys(t *testing.T, server *Table, a [][]byte) {
	t.Helper()
	want, werr := Parse(a)
	got, gerr := server.Parse(a)
	name := want.Name
	if werr != nil {
		if errors.Is(werr, ErrMalformed) {
			return // a padded sample the built-in table checks more strictly
		}
		t.Errorf("%q: built-in: %v", a, werr)
		return
	}
	if unexpressed[name] {
		if !errors.Is(gerr, ErrNoKeys) {
			t.Errorf("%s: key specs should be incomplete, got %v", name, gerr)
		}
		return
	}
	if gerr != nil {
		t.Errorf("%q: key specs: %v", a, gerr)
		return
	}
	if got.Name != name {
		t.Errorf("%q: name %s, built-in %s", a, got.Name, name)
	}
	// (COMMAND of Redis 7.0 does not report may_replicate.)
	if got.Has(Write) != want.Has(Write) {
		t.Errorf("%s: write %v, built-in %v", name, got.Has(Write), want.Has(Write))
	}
	wk := want.Keys
	if want.Has(Channel) {
		wk = nil // the shard channel is a not_key spec
	}
	if !slices.Equal(got.Keys, wk) && len(got.Keys)+len(wk) > 0 {
		t.Errorf("%q: key specs find %v, built-in %v", a, got.Keys, wk)
	}
}

// fakeModule is what COMMAND INFO says of a module's commands (RESP2, as
// go-redis decodes it): one key at 1, keys after a count, keys after a
// keyword, and keys only the module's code can find.
func fakeModule() []any {
	spec := func(bsType string, bs []any, fkType string, fk []any, flags ...any) any {
		return []any{"flags", flags, "begin_search", []any{"type", bsType, "spec", bs}, "find_keys", []any{"type", fkType, "spec", fk}}
	}
	cmd := func(name string, arity int64, flags []any, specs ...any) any {
		return []any{name, arity, flags, int64(0), int64(0), int64(0), []any{"@module"}, []any{}, specs, []any{}}
	}
	return []any{
		cmd("mod.set", -3, []any{"write", "module"},
			spec("index", []any{"index", int64(1)}, "range", []any{"lastkey", int64(0), "keystep", int64(1), "limit", int64(0)}, "RW")),
		cmd("mod.mset", -4, []any{"write", "module", "movablekeys"},
			spec("index", []any{"index", int64(1)}, "keynum", []any{"keynumidx", int64(0), "firstkey", int64(1), "keystep", int64(2)}, "OW")),
		cmd("mod.merge", -4, []any{"write", "module", "movablekeys"},
			spec("index", []any{"index", int64(1)}, "range", []any{"lastkey", int64(0), "keystep", int64(1), "limit", int64(0)}, "OW"),
			spec("keyword", []any{"keyword", "FROM", "startfrom", int64(2)}, "range", []any{"lastkey", int64(-1), "keystep", int64(1), "limit", int64(0)}, "RO")),
		cmd("mod.query", -2, []any{"write", "module", "movablekeys"},
			spec("unknown", []any{}, "unknown", []any{}, "RO")),
		cmd("mod.publish", 3, []any{"pubsub", "may_replicate", "module"},
			spec("index", []any{"index", int64(1)}, "range", []any{"lastkey", int64(0), "keystep", int64(1), "limit", int64(0)}, "not_key")),
		nil, // COMMAND INFO of a name the server does not know
	}
}

// TestLearnedCommandRoutes: commands the built-in table lacks route by
// their key specs once learned.
func TestLearnedCommandRoutes(t *testing.T) {
	if _, err := Parse(args("MOD.SET k v")); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("built-in table knows MOD.SET: %v", err)
	}
	lt, err := Learn(Builtin(), fakeModule())
	if err != nil {
		t.Fatal(err)
	}
	if lt.Learned() != 5 {
		t.Errorf("learned %d commands, want 5", lt.Learned())
	}
	for _, tc := range []struct {
		sample string
		keys   []string
		kind   Kind
	}{
		{"mod.set {u}a v", []string{"{u}a"}, KeyedSingle},
		{"MOD.MSET 2 {u}a 1 {u}b 2", []string{"{u}a", "{u}b"}, KeyedSingle},
		{"MOD.MERGE {u}dst x FROM {u}s1 {u}s2", []string{"{u}dst", "{u}s1", "{u}s2"}, KeyedSingle},
		{"MOD.MERGE {u}dst x y", []string{"{u}dst"}, KeyedSingle},
		{"MOD.PUBLISH ch msg", nil, Keyless},
	} {
		c, err := lt.Parse(args(tc.sample))
		if err != nil {
			t.Errorf("%s: %v", tc.sample, err)
			continue
		}
		if got := names(c.Args, c.Keys); !slices.Equal(got, tc.keys) && len(got)+len(tc.keys) > 0 {
			t.Errorf("%s: keys %q, want %q", tc.sample, got, tc.keys)
		}
		if c.Kind != tc.kind || !c.Has(Learned) {
			t.Errorf("%s: kind %v flags %b", tc.sample, c.Kind, c.Flags)
		}
		slot, err := c.Slot()
		if tc.kind == KeyedSingle && (err != nil || slot != SlotString("u")) {
			t.Errorf("%s: slot %d %v, want %d", tc.sample, slot, err, SlotString("u"))
		}
		if c.Type() != TypeModule {
			t.Errorf("%s: type %v, want module", tc.sample, c.Type())
		}
	}
	c, _ := lt.Parse(args("MOD.SET k v"))
	if !c.Has(Write) || c.Name != "MOD.SET" {
		t.Errorf("MOD.SET: %+v", c)
	}
	if c, _ := lt.Parse(args("MOD.PUBLISH ch m")); !c.Has(PubSub | MayReplicate) {
		t.Errorf("MOD.PUBLISH flags %b", c.Flags)
	}
	// Keys in two slots: a learned command is never split.
	c, _ = lt.Parse(args("MOD.MSET 2 a 1 b 2"))
	if _, err := c.Parts(); !errors.Is(err, ErrCrossSlot) {
		t.Errorf("MOD.MSET across slots: %v", err)
	}
	// Key specs that do not say where the keys are: a clear error naming it.
	_, err = lt.Parse(args("MOD.QUERY idx *"))
	if !errors.Is(err, ErrNoKeys) || !strings.Contains(err.Error(), "MOD.QUERY") {
		t.Errorf("MOD.QUERY: %v", err)
	}
	// Malformed: a count past the arguments.
	if _, err := lt.Parse(args("MOD.MSET 3 a 1 b 2")); err == nil {
		t.Error("MOD.MSET 3 with two pairs parsed")
	}
	// The built-in table is not changed by learning.
	if _, err := Parse(args("MOD.SET k v")); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("Learn changed the built-in table: %v", err)
	}
}

func TestLearnSubcommandsAndErrors(t *testing.T) {
	reply := []any{[]any{"xgroup", int64(-2), []any{}, int64(0), int64(0), int64(0), []any{}, []any{}, []any{}, []any{
		[]any{"xgroup|trim", int64(4), []any{"write"}, int64(2), int64(2), int64(1), []any{"@stream"}, []any{},
			[]any{[]any{"flags", []any{"RW"}, "begin_search", []any{"type", "index", "spec", []any{"index", int64(2)}},
				"find_keys", []any{"type", "range", "spec", []any{"lastkey", int64(0), "keystep", int64(1), "limit", int64(0)}}}}},
	}}}
	lt, err := Learn(Builtin(), reply)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lt.Parse(args("XGROUP TRIM x1 g"))
	if err != nil || c.Name != "XGROUP TRIM" || names(c.Args, c.Keys)[0] != "x1" || c.Type() != TypeStream {
		t.Fatalf("XGROUP TRIM: %+v %v", c, err)
	}
	if c, err := lt.Parse(args("XGROUP CREATE x1 g $")); err != nil || c.Has(Learned) {
		t.Fatalf("XGROUP CREATE: %+v %v", c, err)
	}
	if _, err := Parse(args("XGROUP TRIM x1 g")); err == nil {
		t.Fatal("the built-in table learned XGROUP TRIM")
	}
	for _, bad := range [][]any{{"GET"}, {[]any{"get", "x"}}, {[]any{int64(1), int64(2), []any{}, int64(1), int64(1), int64(1)}}} {
		if _, err := Learn(Builtin(), bad); !errors.Is(err, ErrCommandReply) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	var k *Known
	if c, _ := Parse(args("SET k v")); !k.Knows(&c) {
		t.Error("a nil Known must know everything")
	}
}

// Names past the 32 bytes of the lookup's stack buffer are found too.
func TestLearnLongName(t *testing.T) {
	name := "mod.a-command-name-longer-than-thirty-two-bytes"
	reply := []any{[]any{name, int64(2), []any{"write", "module"}, int64(1), int64(1), int64(1)}}
	lt, err := Learn(Builtin(), reply)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lt.Parse(args(strings.ToUpper(name) + " k"))
	if err != nil || c.Name != strings.ToUpper(name) || len(c.Keys) != 1 || !c.Has(Write|Learned) {
		t.Fatalf("%+v %v", c, err)
	}
}

// TestMissingWrites: the write commands a source knows and a target does
// not, from real COMMAND replies (the target's with APPEND, GET and XGROUP
// left out, as an older or restricted server would).
func TestMissingWrites(t *testing.T) {
	reply := serverCommands(t)
	src, err := KnownCommands(reply)
	if err != nil {
		t.Fatal(err)
	}
	var fewer []any
	for _, e := range reply {
		if name, _ := str(e.([]any)[0]); name == "append" || name == "get" || name == "xgroup" {
			continue
		}
		fewer = append(fewer, e)
	}
	dst, err := KnownCommands(fewer)
	if err != nil {
		t.Fatal(err)
	}
	got := src.MissingWrites(dst)
	for _, want := range []string{"APPEND", "XGROUP CREATE", "XGROUP SETID"} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	if slices.Contains(got, "GET") || slices.Contains(got, "XGROUP HELP") {
		t.Errorf("a read command listed: %v", got)
	}
	if m := src.MissingWrites(src); len(m) != 0 {
		t.Errorf("a server misses nothing of its own: %v", m)
	}
}
