package router

// Flag is a property of a command in the table. A command's flags say where
// it runs and what it does to the keyspace; every package that must know
// something about a command (the applier, the filter, the sinks, the writer's
// error messages) reads it here.
type Flag uint32

const (
	// Write: the command has Redis's write flag.
	Write Flag = 1 << iota
	// MayReplicate: Redis's may-replicate flag (EVAL, FCALL, PUBLISH, PFCOUNT...).
	MayReplicate
	// Splittable: a multi-key command that means the same when split into
	// one command per slot (DEL, UNLINK, TOUCH, EXISTS, MSET): see Parts.
	Splittable
	// ZeroKeys: its numkeys may be 0 (scripts, functions); it is then keyless.
	ZeroKeys
	// Channel: its "key" is a shard channel (SPUBLISH), routed by its slot
	// like a key but not a key of the keyspace.
	Channel
	// Broadcast: without keys it runs on every master of a cluster (FLUSHALL,
	// FLUSHDB, FUNCTION LOAD, SCRIPT FLUSH, EVAL with numkeys 0, MULTI/EXEC).
	Broadcast
	// AnyDB: it does not depend on the selected db (FLUSHALL, SWAPDB,
	// FUNCTION, SCRIPT, PUBLISH, SPUBLISH).
	AnyDB
	// DBArg: it names a db in its arguments (SELECT, SWAPDB, MOVE, COPY ...
	// DB n): see Command.DBArgs.
	DBArg
	// Control: the applier handles it itself (SELECT, MULTI, EXEC, PING,
	// REPLCONF); it is never filtered.
	Control
	// PubSub: it publishes a message (PUBLISH, SPUBLISH): on a cluster one
	// master is enough, the cluster bus spreads it.
	PubSub
	// Overwrite: it replaces its destination whatever that key's type (SET,
	// MSET, SORT ... STORE, the set and zset stores, BITOP...).
	Overwrite
	// DestLast: a store whose destinations are Keys[1:] (SORT ... STORE,
	// GEORADIUS ... STORE), not Keys[0]; with a single key it is a read.
	DestLast
	// Learned: the entry comes from a server's COMMAND reply, not from the
	// built-in table (see Learn).
	Learned
	// Fold: a run of the command on one key means what one call with the
	// run's arguments after the key does (LPUSH, RPUSH, SADD, SREM, HSET,
	// HDEL, ZREM, PFADD, a ZADD without options): the writer may send such a
	// run as one command (writer.Batch.MarkFold).
	Fold
	// FoldKeys: a run of the command on any keys means what one call with
	// all their arguments after the name does (DEL, UNLINK, MSET; a SET
	// without options, whose run is one MSET): the writer may send such a
	// run as one command when its keys share a db or slot.
	FoldKeys
)

// DataType is a set of Redis data types, one bit each.
type DataType uint8

const (
	TypeString DataType = 1 << iota
	TypeList
	TypeSet
	TypeZSet
	TypeHash
	TypeStream
	TypeModule

	// TypeAll is every type.
	TypeAll = TypeString | TypeList | TypeSet | TypeZSet | TypeHash | TypeStream | TypeModule
)

// Shape says what a command with several keys does with them, for a filter
// that copies some of them and not others.
type Shape uint8

const (
	// ShapeTogether: the keys go together (refuse a split).
	ShapeTogether Shape = iota
	// ShapeSplit: each key (with its value, see Command.Step) stands alone:
	// DEL, UNLINK, TOUCH, EXISTS, MSET, MSETNX.
	ShapeSplit
	// ShapeStore: destination(s) written from the other keys.
	ShapeStore
	// ShapeMove: Keys[0] → Keys[1] (RENAME, SMOVE, LMOVE, COPY...).
	ShapeMove
)

// finder names how a command's keys are found.
type finder uint8

const (
	findRange    finder = iota // args[first..last] by step; last < 0 counts from the end
	findNumkeys                // a numkeys count at pos, the keys right after it (by step), and store if not 0
	findSort                   // SORT key [BY p] [LIMIT o c] [GET p]... [STORE dst]
	findMigrate                // MIGRATE host port key|"" db timeout [...] [KEYS k...]
	findGeoStore               // key at 1, and the key after STORE/STOREDIST from pos on
	findStreams                // XREAD/XREADGROUP [options] STREAMS k1..kn id1..idn
	findSpecs                  // a learned command: its key specifications
	findNone                   // a learned command whose key specs do not say where all its keys are
)

type spec struct {
	name  string
	arity int16
	flags Flag
	typ   DataType // the data type it writes (0: generic)
	in    DataType // a store: the types it may read
	shape Shape
	find  finder
	first int8 // findRange
	last  int8 // findRange
	step  int8 // findRange, findNumkeys; 0 means 1
	pos   int8 // findNumkeys: where numkeys is; findGeoStore: where options start
	store int8 // findNumkeys: the destination key, 0 for none
	// foldIf: the fold flag (Fold, FoldKeys or none) the command takes with
	// these arguments, for a command only some of whose forms fold.
	foldIf func(args [][]byte) Flag
	// ks are a learned command's key specifications (findSpecs).
	ks     []keySpec
	subs   []spec
	subMap table
	subIdx index
}

type table map[string]*spec

// index is a read-only open-addressing hash table over a table's names: a
// lookup hashes the name (FNV-1a) while it upper-cases it and probes a slot
// or two, which costs about half of a map lookup, whose hash needs the
// upper-cased copy first. Parse does one or two lookups per command.
type index struct {
	names []string // upper-case names; "" for an empty slot
	specs []*spec
	words []uint64 // the first 8 bytes of each name (see word): a short name compares as one word
	mask  uint32
}

// word packs the first 8 bytes of name, zero-padded: two names of the same
// length up to 8 bytes are equal when their words are.
func word(name []byte) uint64 {
	var w uint64
	for i, c := range name[:min(len(name), 8)] {
		w |= uint64(c) << (8 * i)
	}
	return w
}

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

func newIndex(t table) index {
	n := 8
	for n < 2*len(t) { // at most half full: probes stay short
		n *= 2
	}
	ix := index{names: make([]string, n), specs: make([]*spec, n), words: make([]uint64, n), mask: uint32(n - 1)}
	for name, s := range t {
		h := uint32(fnvOffset)
		for i := 0; i < len(name); i++ {
			h = (h ^ uint32(name[i])) * fnvPrime
		}
		for i := h & ix.mask; ; i = (i + 1) & ix.mask {
			if ix.names[i] == "" {
				ix.names[i], ix.specs[i], ix.words[i] = name, s, word([]byte(name))
				break
			}
		}
	}
	return ix
}

// find looks name up case-insensitively, without allocating for a name of
// up to 32 bytes (every built-in name; a longer one, a module's, takes
// findLong).
func (ix *index) find(name []byte) *spec {
	if len(name) > 32 {
		return ix.findLong(name)
	}
	var buf [32]byte
	h := uint32(fnvOffset)
	for i, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
		h = (h ^ uint32(c)) * fnvPrime
	}
	return ix.probe(h, buf[:len(name)])
}

// maxName bounds the names findLong copies: no command is named longer, and
// a huge unknown first argument must not be copied.
const maxName = 256

func (ix *index) findLong(name []byte) *spec {
	if len(name) > maxName {
		return nil
	}
	up := make([]byte, len(name))
	h := uint32(fnvOffset)
	for i, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
		h = (h ^ uint32(c)) * fnvPrime
	}
	return ix.probe(h, up)
}

// probe finds the upper-case name up of hash h.
func (ix *index) probe(h uint32, up []byte) *spec {
	if len(ix.names) == 0 {
		return nil
	}
	if len(up) <= 8 {
		w := word(up)
		for i := h & ix.mask; ; i = (i + 1) & ix.mask {
			n := ix.names[i]
			if n == "" {
				return nil
			}
			if len(n) == len(up) && ix.words[i] == w {
				return ix.specs[i]
			}
		}
	}
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		n := ix.names[i]
		if n == "" {
			return nil
		}
		if n == string(up) {
			return ix.specs[i]
		}
	}
}

// Table is a command table: the built-in one (Builtin), or one extended from
// what a server says of its commands (Learn). It is read-only once built and
// safe for concurrent use.
type Table struct {
	cmds    table
	idx     index
	learned int
}

// builtin is Redis 7.4's table plus the commands of later Redis and Valkey
// versions listed in commands.go.
var builtin = newTable(buildTable(commandTable), 0)

func newTable(t table, learned int) *Table {
	return &Table{cmds: t, idx: newIndex(t), learned: learned}
}

// Builtin returns the built-in table: the fallback when a server does not
// tell its commands (COMMAND renamed or forbidden).
func Builtin() *Table { return builtin }

// Learned is the number of commands and subcommands the table took from a
// server that the built-in table lacks.
func (t *Table) Learned() int { return t.learned }

func buildTable(specs []spec) table {
	t := make(table, len(specs))
	for i := range specs {
		s := &specs[i]
		t[s.name] = s
		if s.subs != nil {
			s.subMap = make(table, len(s.subs))
			for j := range s.subs {
				sub := &s.subs[j]
				s.subMap[sub.name[len(s.name)+1:]] = sub
			}
			s.subIdx = newIndex(s.subMap)
		}
	}
	return t
}
