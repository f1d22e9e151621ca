package router

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// A server describes its commands in the reply to COMMAND (or COMMAND INFO
// name...): per command its name, arity, flags, legacy first/last/step key
// positions, ACL categories, tips, key specifications (Redis 7+) and
// subcommands. Learn and KnownCommands read that reply as a RESP client
// decodes it: arrays as []any, strings as string (or []byte), integers as
// int64; RESP3 maps as map[any]any or map[string]any.

// keySpec is one key specification of a learned command: where the search
// for its keys begins (an index, or the argument after a keyword), and how
// the keys are found from there (a range, or a count of keys).
type keySpec struct {
	notKey bool // a channel or another name that is not a key of the keyspace

	index     int    // begin_search index (> 0), or 0 for a keyword search
	keyword   string // begin_search keyword, upper case
	startFrom int    // keyword: where the search starts (< 0: from the end, backwards)

	keynum    bool // find_keys keynum (else range)
	lastKey   int  // range: the last key, relative to the first (< 0: from the end)
	keyStep   int
	limit     int // range with lastkey -1: only the first 1/limit of the arguments
	keyNumIdx int // keynum: where the count is, relative to the begin
	firstKey  int // keynum: the first key, relative to the begin
}

// specKeys finds the keys of a learned command by its key specs, the way the
// server itself reads them; positions are sorted and deduplicated.
func specKeys(ks []keySpec, args [][]byte) ([]int, error) {
	var keys []int
	argc := len(args)
	for _, k := range ks {
		if k.notKey {
			continue
		}
		begin := k.index
		if begin == 0 {
			begin = keywordBegin(k, args)
			if begin == 0 {
				continue // keyword absent: no keys from this spec
			}
		}
		first, last, step := begin, 0, max(k.keyStep, 1)
		if k.keynum {
			at := begin + k.keyNumIdx
			if at >= argc {
				return nil, fmt.Errorf("no key count at argument %d", at)
			}
			n, ok := parseCount(args[at])
			if !ok {
				return nil, fmt.Errorf("key count %s is not a count", quote(args[at]))
			}
			first = begin + k.firstKey
			last = first + (n-1)*step
		} else {
			switch {
			case k.lastKey >= 0:
				last = first + k.lastKey
			case k.limit > 1:
				last = first + (argc-first)/k.limit + k.lastKey
			default:
				last = argc + k.lastKey
			}
		}
		if last >= argc {
			return nil, fmt.Errorf("key %d of %d arguments", last, argc-1)
		}
		for i := first; i <= last; i += step {
			keys = append(keys, i)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// keywordBegin is the argument after the spec's keyword, 0 when absent.
func keywordBegin(k keySpec, args [][]byte) int {
	if k.startFrom >= 0 {
		for i := max(k.startFrom, 1); i < len(args); i++ {
			if is(args[i], k.keyword) {
				return i + 1
			}
		}
		return 0
	}
	for i := len(args) + k.startFrom; i >= 1; i-- {
		if is(args[i], k.keyword) {
			return i + 1
		}
	}
	return 0
}

// ErrCommandReply is wrapped by the errors of Learn and KnownCommands for a
// reply that is not a COMMAND reply.
var ErrCommandReply = errors.New("not a COMMAND reply")

// Learn returns base extended with what a server says of its commands (the
// reply to COMMAND, or COMMAND INFO): a command or subcommand base lacks —
// a module's, or one of a server newer than ferry — is added with its arity,
// its flags (write, may_replicate, pubsub) and its key specifications, so
// that it routes by its keys without code changes. A command base has keeps
// base's entry: the built-in table is checked against real servers and holds
// what key specs cannot express (keys found by parsing options, which
// commands split per slot, what a filter must know).
//
// A learned command whose key specs are incomplete (or of an unknown kind)
// parses to an error wrapping ErrNoKeys; a learned command without keys is
// keyless, but not Broadcast: a cluster sink cannot place it.
func Learn(base *Table, reply []any) (*Table, error) {
	learned, err := readReply(reply)
	if err != nil {
		return nil, err
	}
	cmds := make(table, len(base.cmds)+len(learned))
	for name, s := range base.cmds {
		cmds[name] = s
	}
	n := base.learned
	for name, ls := range learned {
		s, ok := cmds[name]
		if !ok {
			cmds[name] = ls
			n += 1 + len(ls.subs)
			continue
		}
		if s.subs == nil || ls.subs == nil {
			continue
		}
		// A container both know: add the subcommands base lacks, on a copy.
		var extra []spec
		for i := range ls.subs {
			if s.subMap[ls.subs[i].name[len(name)+1:]] == nil {
				extra = append(extra, ls.subs[i])
			}
		}
		if len(extra) == 0 {
			continue
		}
		c := *s
		c.subs = append(slices.Clone(s.subs), extra...)
		c.subMap = make(table, len(c.subs))
		for i := range c.subs {
			c.subMap[c.subs[i].name[len(name)+1:]] = &c.subs[i]
		}
		c.subIdx = newIndex(c.subMap)
		cmds[name] = &c
		n += len(extra)
	}
	return newTable(cmds, n), nil
}

// Known is the set of commands a server knows (from KnownCommands). The zero
// value and nil know nothing of the server: Knows then says yes.
type Known struct {
	idx index
	n   int
}

// KnownCommands reads which commands a server knows from its reply to
// COMMAND: a target that does not know a command the source sent cannot
// apply it.
func KnownCommands(reply []any) (*Known, error) {
	t, err := readReply(reply)
	if err != nil {
		return nil, err
	}
	return &Known{idx: newIndex(t), n: len(t)}, nil
}

// Knows reports whether the server knows the command c (its name, and its
// subcommand when the server lists subcommands for it). A nil *Known knows
// every command.
func (k *Known) Knows(c *Command) bool {
	if k == nil || k.n == 0 || len(c.Args) == 0 {
		return true
	}
	s := k.idx.find(c.Args[0])
	if s == nil {
		return false
	}
	if len(s.subMap) == 0 || len(c.Args) < 2 {
		return true
	}
	return s.subIdx.find(c.Args[1]) != nil
}

// MissingWrites lists, sorted, the write commands (and subcommands) k
// knows that other does not: what a source's stream may carry that a
// target would refuse. Empty when either cannot say.
func (k *Known) MissingWrites(other *Known) []string {
	if k == nil || other == nil || k.n == 0 || other.n == 0 {
		return nil
	}
	var out []string
	for i, name := range k.idx.names {
		s := k.idx.specs[i]
		if name == "" || s == nil {
			continue
		}
		o := other.idx.find([]byte(name))
		if len(s.subMap) == 0 {
			if o == nil && s.flags&Write != 0 {
				out = append(out, name)
			}
			continue
		}
		for sub, ss := range s.subMap {
			if ss.flags&Write == 0 {
				continue
			}
			if o == nil || (len(o.subMap) > 0 && o.subIdx.find([]byte(sub)) == nil) {
				out = append(out, name+" "+sub)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Len is the number of commands (not subcommands) the server knows.
func (k *Known) Len() int {
	if k == nil {
		return 0
	}
	return k.n
}

// readReply turns a COMMAND reply into table entries, subcommands included.
func readReply(reply []any) (table, error) {
	t := make(table, len(reply))
	for i, e := range reply {
		if e == nil {
			continue // COMMAND INFO of a name the server does not know
		}
		s, err := readEntry(e, "")
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrCommandReply, i, err)
		}
		t[s.name] = s
	}
	return t, nil
}

func readEntry(e any, parent string) (*spec, error) {
	a, ok := e.([]any)
	if !ok || len(a) < 6 {
		return nil, fmt.Errorf("a command is described by an array of at least 6 elements, not %T", e)
	}
	name, ok := str(a[0])
	if !ok || name == "" {
		return nil, errors.New("no command name")
	}
	name = strings.ReplaceAll(strings.ToUpper(name), "|", " ")
	if parent != "" && !strings.HasPrefix(name, parent+" ") {
		name = parent + " " + name
	}
	arity, ok1 := integer(a[1])
	first, ok2 := integer(a[3])
	last, ok3 := integer(a[4])
	step, ok4 := integer(a[5])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, fmt.Errorf("%s: arity or key positions are not integers", name)
	}
	s := &spec{name: name, arity: int16(arity), flags: Learned}
	flags, _ := a[2].([]any)
	module, movable := false, false
	for _, f := range flags {
		switch v, _ := str(f); strings.ToLower(v) {
		case "write":
			s.flags |= Write
		case "may_replicate":
			s.flags |= MayReplicate
		case "pubsub":
			s.flags |= PubSub | AnyDB
		case "module":
			module = true
		case "movablekeys":
			movable = true
		}
	}
	if len(a) > 6 {
		s.typ = categoryType(a[6])
	}
	if module {
		s.typ = TypeModule
	}
	if len(a) > 8 && a[8] != nil {
		if err := readKeySpecs(s, a[8]); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	} else {
		// A server older than Redis 7: the legacy key positions only.
		switch {
		case movable:
			s.find = findNone
		case first > 0:
			if first > 127 || last > 127 || last < -128 || step > 127 {
				return nil, fmt.Errorf("%s: key positions %d,%d,%d out of range", name, first, last, step)
			}
			s.first, s.last, s.step = int8(first), int8(last), int8(step)
		}
	}
	if len(a) > 9 {
		subs, _ := a[9].([]any)
		for _, sub := range subs {
			ss, err := readEntry(sub, name)
			if err != nil {
				return nil, err
			}
			s.subs = append(s.subs, *ss)
		}
		if len(s.subs) > 0 {
			s.subMap = make(table, len(s.subs))
			for i := range s.subs {
				s.subMap[s.subs[i].name[len(name)+1:]] = &s.subs[i]
			}
			s.subIdx = newIndex(s.subMap)
		}
	}
	return s, nil
}

// categoryType is the data type of a command's ACL categories (@hash...).
func categoryType(v any) DataType {
	cats, _ := v.([]any)
	for _, c := range cats {
		switch s, _ := str(c); strings.TrimPrefix(strings.ToLower(s), "@") {
		case "string", "bitmap", "hyperloglog":
			return TypeString
		case "list":
			return TypeList
		case "set":
			return TypeSet
		case "sortedset", "geo":
			return TypeZSet
		case "hash":
			return TypeHash
		case "stream":
			return TypeStream
		}
	}
	return 0
}

// readKeySpecs reads the key specifications of s (COMMAND's 9th element).
func readKeySpecs(s *spec, v any) error {
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("key specs are %T, not an array", v)
	}
	if len(list) == 0 {
		return nil // no keys
	}
	s.find = findSpecs
	for _, e := range list {
		m := fields(e)
		var k keySpec
		for _, f := range asList(m["flags"]) {
			switch v, _ := str(f); strings.ToLower(v) {
			case "not_key":
				k.notKey = true
			case "incomplete":
				s.find = findNone
			}
		}
		bs := fields(m["begin_search"])
		bspec := fields(bs["spec"])
		switch typ, _ := str(bs["type"]); typ {
		case "index":
			i, ok := integer(bspec["index"])
			if !ok || i < 1 {
				return fmt.Errorf("begin_search index %v", bspec["index"])
			}
			k.index = int(i)
		case "keyword":
			kw, ok := str(bspec["keyword"])
			from, ok2 := integer(bspec["startfrom"])
			if !ok || !ok2 || kw == "" {
				return fmt.Errorf("begin_search keyword %v", bspec)
			}
			k.keyword, k.startFrom = strings.ToUpper(kw), int(from)
		default:
			s.find = findNone // "unknown": only the command's own code knows
		}
		fk := fields(m["find_keys"])
		fspec := fields(fk["spec"])
		switch typ, _ := str(fk["type"]); typ {
		case "range":
			last, ok1 := integer(fspec["lastkey"])
			step, ok2 := integer(fspec["keystep"])
			limit, ok3 := integer(fspec["limit"])
			if !ok1 || !ok2 || !ok3 || step < 0 || limit < 0 {
				return fmt.Errorf("find_keys range %v", fspec)
			}
			k.lastKey, k.keyStep, k.limit = int(last), int(step), int(limit)
		case "keynum":
			idx, ok1 := integer(fspec["keynumidx"])
			first, ok2 := integer(fspec["firstkey"])
			step, ok3 := integer(fspec["keystep"])
			if !ok1 || !ok2 || !ok3 || idx < 0 || first < 0 || step < 0 {
				return fmt.Errorf("find_keys keynum %v", fspec)
			}
			k.keynum, k.keyNumIdx, k.firstKey, k.keyStep = true, int(idx), int(first), int(step)
		default:
			s.find = findNone
		}
		s.ks = append(s.ks, k)
	}
	return nil
}

// fields reads a RESP2 flat array of name-value pairs, or a RESP3 map.
func fields(v any) map[string]any {
	m := map[string]any{}
	switch x := v.(type) {
	case []any:
		for i := 0; i+1 < len(x); i += 2 {
			if k, ok := str(x[i]); ok {
				m[strings.ToLower(k)] = x[i+1]
			}
		}
	case map[any]any:
		for k, v := range x {
			if s, ok := str(k); ok {
				m[strings.ToLower(s)] = v
			}
		}
	case map[string]any:
		for k, v := range x {
			m[strings.ToLower(k)] = v
		}
	}
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func str(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	return "", false
}

func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}
