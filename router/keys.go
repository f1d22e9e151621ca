// Package router holds all that ferry knows of Redis commands: one table with
// flags per command (where its keys are, whether it writes, where it runs,
// what a filter must know of it), and the parsed Command value that the
// applier, the filter, the slot-move registry and the sinks all read, so a
// replicated command is parsed once. It finds the keys of a command and the
// hash slot(s) they belong to, so that each command reaches the writer of the
// target master that serves its slot.
//
// The built-in table is Redis 7.4's plus the commands of later Redis and
// Valkey versions; Learn extends it from a server's COMMAND reply (key
// specifications and flags), so that a command ferry was not built with
// (a module's, a newer server's) routes by its key specs. The package is
// pure: no network, no state but read-only tables and a lazily built table of
// slot tags.
package router

import (
	"errors"
	"fmt"
	"strconv"
)

// Kind says how a command's keys decide where it runs.
type Kind uint8

const (
	// Invalid is the Kind returned with an error.
	Invalid Kind = iota
	// Keyless commands have no key (FLUSHALL, SWAPDB, FUNCTION LOAD, PUBLISH,
	// SELECT, MULTI, EXEC, PING, EVAL with numkeys 0...): the caller runs them
	// on every master or handles them itself.
	Keyless
	// KeyedSingle commands have one key, or several that must all be in one
	// slot for the command to run on a cluster (RENAME, SMOVE, LMOVE, COPY,
	// BITOP, SINTERSTORE, ZUNIONSTORE, SORT ... STORE, PFMERGE, MSETNX, EVAL
	// with keys...).
	KeyedSingle
	// KeyedSplittable commands may have keys in several slots and mean the
	// same when split into one command per slot: DEL, UNLINK, TOUCH, EXISTS,
	// MSET (key-value pairs).
	KeyedSplittable
)

func (k Kind) String() string {
	switch k {
	case Keyless:
		return "keyless"
	case KeyedSingle:
		return "keyed-single"
	case KeyedSplittable:
		return "keyed-splittable"
	}
	return "invalid"
}

// ErrUnknownCommand is wrapped by the error for a command (or subcommand)
// that is not in the table, such as a module's command the source did not
// describe.
var ErrUnknownCommand = errors.New("unknown command")

// ErrNoKeys is wrapped by the error for a learned command whose key
// specifications do not say where all its keys are (an "incomplete" or
// "unknown" key spec): ferry cannot place it.
var ErrNoKeys = errors.New("cannot find the keys of")

var errNoKeySpec = errors.New("its key specifications do not say where all its keys are")

// ErrMalformed is wrapped by the error for a known command whose arguments
// do not fit it: wrong number of arguments, bad numkeys, a STORE without
// its key...
var ErrMalformed = errors.New("malformed command")

// Parse parses args with the built-in table (see Table.Parse).
func Parse(args [][]byte) (Command, error) { return builtin.Parse(args) }

// Keys returns the indexes into args of the keys of the command (ascending;
// read-only, see Command.Keys) and its Kind. Unknown commands and malformed
// arguments are errors wrapping ErrUnknownCommand or ErrMalformed.
func Keys(args [][]byte) (keys []int, kind Kind, err error) {
	c, err := Parse(args)
	if err != nil {
		return nil, Invalid, err
	}
	return c.Keys, c.Kind, nil
}

// seq[i] == i: key positions that form a run are a sub-slice of it.
var seq = func() (a [256]int) {
	for i := range a {
		a[i] = i
	}
	return a
}()

// odd[i] == 2*i+1: the keys of MSET k v k v...
var odd = func() (a [128]int) {
	for i := range a {
		a[i] = 2*i + 1
	}
	return a
}()

func (s *spec) keys(args [][]byte) ([]int, error) {
	switch s.find {
	case findRange:
		return s.rangeKeys(len(args))
	case findNumkeys:
		return s.numkeysKeys(args)
	case findSort:
		return sortKeys(args)
	case findMigrate:
		return migrateKeys(args)
	case findGeoStore:
		return geoStoreKeys(args, int(s.pos))
	case findStreams:
		return streamsKeys(args)
	case findSpecs:
		return specKeys(s.ks, args)
	case findNone:
		return nil, errNoKeySpec
	}
	return nil, fmt.Errorf("no key finder %d", s.find)
}

func (s *spec) rangeKeys(n int) ([]int, error) {
	if s.first == 0 {
		return nil, nil
	}
	first, last, step := int(s.first), int(s.last), int(s.step)
	if step == 0 {
		step = 1
	}
	if last < 0 {
		last += n
		if step > 1 && (n-first)%step != 0 {
			return nil, fmt.Errorf("the arguments after the first key are not in groups of %d", step)
		}
	}
	if last < first || last >= n {
		return nil, errors.New("no key")
	}
	switch {
	case step == 1 && last < len(seq):
		return seq[first : last+1 : last+1], nil
	case step == 2 && first == 1 && (last-first)/2 < len(odd):
		k := (last-first)/2 + 1
		return odd[:k:k], nil
	}
	keys := make([]int, 0, (last-first)/step+1)
	for i := first; i <= last; i += step {
		keys = append(keys, i)
	}
	return keys, nil
}

// numkeysKeys: COMMAND [dst] numkeys key... [options], or with step 2
// COMMAND numkeys key value key value... (MSETEX).
func (s *spec) numkeysKeys(args [][]byte) ([]int, error) {
	p := int(s.pos)
	num, ok := parseCount(args[p])
	if !ok {
		return nil, fmt.Errorf("numkeys %s is not a count", quote(args[p]))
	}
	if num == 0 {
		if s.flags&ZeroKeys != 0 {
			return nil, nil
		}
		return nil, errors.New("numkeys must be positive")
	}
	step := max(int(s.step), 1)
	if num > (len(args)-p-1)/step {
		return nil, fmt.Errorf("numkeys %d exceeds the %d arguments that follow it", num, len(args)-p-1)
	}
	first := p + 1
	last := first + (num-1)*step
	if s.store == 0 && step == 1 && last < len(seq) {
		return seq[first : last+1 : last+1], nil
	}
	keys := make([]int, 0, num+1)
	if s.store != 0 {
		keys = append(keys, int(s.store))
	}
	for i := first; i <= last; i += step {
		keys = append(keys, i)
	}
	return keys, nil
}

// parseCount parses a non-negative decimal integer the way Redis's
// string2ll accepts it (no sign, no spaces, no leading zeros).
func parseCount(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// is reports whether arg equals upper (an upper-case ASCII word),
// case-insensitively.
func is(arg []byte, upper string) bool {
	if len(arg) != len(upper) {
		return false
	}
	for i, c := range arg {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// sortKeys: the sorted key, and the destination of the last STORE (which is
// the one SORT writes), skipping the arguments of BY, GET and LIMIT.
func sortKeys(args [][]byte) ([]int, error) {
	store := 0
	for i := 2; i < len(args); i++ {
		switch a := args[i]; {
		case is(a, "LIMIT"):
			i += 2
		case is(a, "GET"), is(a, "BY"):
			i++
		case is(a, "STORE"):
			if i+1 >= len(args) {
				return nil, errors.New("STORE without a destination key")
			}
			store = i + 1
			i++
		}
	}
	if store == 0 {
		return seq[1:2:2], nil
	}
	return []int{1, store}, nil
}

// migrateKeys: the key at 3, or, when it is "", the keys after KEYS.
func migrateKeys(args [][]byte) ([]int, error) {
	for i := 6; i < len(args); i++ {
		switch a := args[i]; {
		case is(a, "KEYS"):
			if len(args[3]) > 0 {
				return nil, errors.New("KEYS given with a key in the key position")
			}
			if i+1 >= len(args) {
				return nil, errors.New("KEYS without keys")
			}
			if len(args) <= len(seq) {
				return seq[i+1 : len(args) : len(args)], nil
			}
			keys := make([]int, 0, len(args)-i-1)
			for j := i + 1; j < len(args); j++ {
				keys = append(keys, j)
			}
			return keys, nil
		case is(a, "AUTH"):
			i++
		case is(a, "AUTH2"):
			i += 2
		}
	}
	return seq[3:4:4], nil
}

// geoStoreKeys: GEORADIUS[BYMEMBER] key ... [STORE dst] [STOREDIST dst]. Every
// destination named counts (the server writes the last one; a command naming
// two in different slots is refused rather than guessed at).
func geoStoreKeys(args [][]byte, from int) ([]int, error) {
	var keys []int
	for i := from; i < len(args); i++ {
		if is(args[i], "STORE") || is(args[i], "STOREDIST") {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("%s without a destination key", quote(args[i]))
			}
			if keys == nil {
				keys = append(make([]int, 0, 3), 1)
			}
			keys = append(keys, i+1)
			i++
		}
	}
	if keys == nil {
		return seq[1:2:2], nil
	}
	return keys, nil
}

// streamsKeys: XREAD [COUNT n] [BLOCK ms] STREAMS k1..kn id1..idn, and
// XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS ...
func streamsKeys(args [][]byte) ([]int, error) {
	at := 0
scan:
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case is(a, "BLOCK"), is(a, "COUNT"):
			i++
		case is(a, "GROUP"):
			i += 2
		case is(a, "NOACK"):
		case is(a, "STREAMS"):
			at = i
			break scan
		default:
			return nil, fmt.Errorf("unexpected option %s before STREAMS", quote(a))
		}
	}
	if at == 0 {
		return nil, errors.New("no STREAMS")
	}
	rest := len(args) - at - 1
	if rest == 0 || rest%2 != 0 {
		return nil, errors.New("STREAMS needs as many IDs as keys")
	}
	first, last := at+1, at+rest/2
	if last < len(seq) {
		return seq[first : last+1 : last+1], nil
	}
	keys := make([]int, 0, rest/2)
	for i := first; i <= last; i++ {
		keys = append(keys, i)
	}
	return keys, nil
}

// quote renders an argument for an error message: Go-quoted, cut at 64 bytes.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "…"
	}
	return strconv.Quote(string(b))
}

// Clip is a key or argument cut to 100 bytes for an error message.
func Clip(b []byte) string {
	if len(b) > 100 {
		return string(b[:100]) + "…"
	}
	return string(b)
}
