package filter

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/router"
)

// Type bits: router's data types.
const (
	tModule = router.TypeModule
	tAll    = router.TypeAll
)

// typeNames are the type names of conf and rdb.TypeName, in the order of
// router's DataType bits.
var typeNames = [...]string{"string", "list", "set", "zset", "hash", "stream", "module"}

// typeBit is the bit of a type name; 0 for an unknown name.
func typeBit(name string) router.DataType {
	for i, n := range typeNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// Decision is what becomes of one stream command.
type Decision uint8

const (
	// Apply: send the command (as Rewrite returned it).
	Apply Decision = iota
	// Drop: the command only concerns what the job does not copy; skip it.
	Drop
	// Refuse: the command mixes what is copied with what is not in a way the
	// target cannot reproduce; applying it, or any part of it, would leave
	// the target wrong. Stop the job (or skip it with on_error = "skip").
	Refuse
)

func (d Decision) String() string {
	switch d {
	case Apply:
		return "apply"
	case Drop:
		return "drop"
	case Refuse:
		return "refuse"
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// Reasons of Drop decisions (constant strings: dropping allocates nothing).
const (
	WhyDB      = "db not copied"
	WhyKey     = "key not copied"
	WhyType    = "type not copied"
	WhyCommand = "command not copied"
)

// Filter is a compiled conf.Filter. A nil *Filter allows everything. It is
// read-only after New and safe for concurrent use.
type Filter struct {
	dbs, blockDBs           map[int]bool
	prefixes, blockPrefixes [][]byte
	regex, blockRegex       []*regexp.Regexp
	types                   router.DataType // allowed types (tAll when no rule)
	typeAllow               bool            // a types allow list is set
	cmds, blockCmds         map[string]bool

	dbRules, keyRules, typeRules, cmdRules bool
}

// New compiles f. It returns nil, which allows everything, when f sets no
// rule. Errors name the field, as conf's do ("regex: ...").
func New(f conf.Filter) (*Filter, error) {
	x := &Filter{types: tAll}
	for _, db := range f.DBs {
		if db < 0 {
			return nil, fmt.Errorf("dbs: %d is not a database number", db)
		}
		if x.dbs == nil {
			x.dbs = map[int]bool{}
		}
		x.dbs[db] = true
	}
	for _, db := range f.BlockDBs {
		if db < 0 {
			return nil, fmt.Errorf("block_dbs: %d is not a database number", db)
		}
		if x.blockDBs == nil {
			x.blockDBs = map[int]bool{}
		}
		x.blockDBs[db] = true
	}
	for _, p := range f.Prefixes {
		if p == "" {
			return nil, errors.New(`prefixes: "" matches every key`)
		}
		x.prefixes = append(x.prefixes, []byte(p))
	}
	for _, p := range f.BlockPrefixes {
		if p == "" {
			return nil, errors.New(`block_prefixes: "" matches every key`)
		}
		x.blockPrefixes = append(x.blockPrefixes, []byte(p))
	}
	for _, l := range []struct {
		field string
		src   []string
		dst   *[]*regexp.Regexp
	}{{"regex", f.Regex, &x.regex}, {"block_regex", f.BlockRegex, &x.blockRegex}} {
		for _, s := range l.src {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a valid regular expression (Go RE2 syntax): %w", l.field, s, err)
			}
			*l.dst = append(*l.dst, re)
		}
	}
	if len(f.Types) > 0 {
		x.types, x.typeAllow = 0, true
		for _, t := range f.Types {
			b := typeBit(strings.ToLower(strings.TrimSpace(t)))
			if b == 0 {
				return nil, fmt.Errorf("types: %q is not a key type (%s)", t, strings.Join(typeNames[:], " "))
			}
			x.types |= b
		}
	}
	for _, t := range f.BlockTypes {
		b := typeBit(strings.ToLower(strings.TrimSpace(t)))
		if b == 0 {
			return nil, fmt.Errorf("block_types: %q is not a key type (%s)", t, strings.Join(typeNames[:], " "))
		}
		x.types &^= b
	}
	x.cmds = commandSet(f.Commands)
	x.blockCmds = commandSet(f.BlockCommands)

	x.dbRules = x.dbs != nil || x.blockDBs != nil
	x.keyRules = len(x.prefixes)+len(x.blockPrefixes)+len(x.regex)+len(x.blockRegex) > 0
	x.typeRules = x.types != tAll || x.typeAllow
	x.cmdRules = x.cmds != nil || x.blockCmds != nil
	if !x.dbRules && !x.keyRules && !x.typeRules && !x.cmdRules {
		return nil, nil
	}
	return x, nil
}

func commandSet(l []string) map[string]bool {
	if len(l) == 0 {
		return nil
	}
	m := make(map[string]bool, len(l))
	for _, c := range l {
		m[strings.ToLower(strings.TrimSpace(c))] = true
	}
	return m
}

// DB reports whether the source db db is copied at all.
func (f *Filter) DB(db int) bool {
	if f == nil || !f.dbRules {
		return true
	}
	if f.dbs != nil && !f.dbs[db] {
		return false
	}
	return !f.blockDBs[db]
}

// Key reports whether key of source db db is copied (db, prefix and regex
// rules; not the type, see Type).
func (f *Filter) Key(db int, key []byte) bool {
	if f == nil {
		return true
	}
	return f.DB(db) && f.name(key)
}

// name applies the prefix and regex rules.
func (f *Filter) name(key []byte) bool {
	if !f.keyRules {
		return true
	}
	if len(f.prefixes) > 0 && !hasPrefix(key, f.prefixes) || hasPrefix(key, f.blockPrefixes) {
		return false
	}
	if len(f.regex) > 0 && !matches(key, f.regex) || matches(key, f.blockRegex) {
		return false
	}
	return true
}

func hasPrefix(key []byte, ps [][]byte) bool {
	for _, p := range ps {
		if bytes.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func matches(key []byte, rs []*regexp.Regexp) bool {
	for _, r := range rs {
		if r.Match(key) {
			return true
		}
	}
	return false
}

// Type reports whether keys of type t ("string", "list", "set", "zset",
// "hash", "stream", "module", as rdb.TypeName names them) are copied. A name
// it does not know is copied only when no types allow list is set.
func (f *Filter) Type(t string) bool {
	if f == nil || !f.typeRules {
		return true
	}
	b := typeBit(t)
	if b == 0 {
		return !f.typeAllow // block_types cannot name it
	}
	return f.types&b != 0
}

// Record reports whether a snapshot key is copied: Key and Type.
func (f *Filter) Record(db int, key []byte, typ string) bool {
	return f.Key(db, key) && f.Type(typ)
}

// Functions reports whether function libraries (FUNCTION LOAD, and the
// libraries of a snapshot) are copied: the command rules for "function" or
// "function|load".
func (f *Filter) Functions() bool {
	if f == nil || !f.cmdRules {
		return true
	}
	return f.commandAllowed([][]byte{bFunction, bLoad}, true)
}

var (
	bFunction = []byte("FUNCTION")
	bLoad     = []byte("LOAD")
)

// Command is Rewrite's decision alone.
func (f *Filter) Command(db int, args [][]byte) Decision {
	_, d, _ := f.Rewrite(db, args)
	return d
}
