package router

import (
	"bytes"
	"fmt"
	"strings"
)

// Command is one command parsed once: its table entry, its keys, and, on
// demand, its slot, its parts per slot and the positions of the dbs it names.
// The applier parses each replicated command once and hands a *Command to the
// filter, the slot-move registry and the sink.
type Command struct {
	// Name is the canonical upper-case name from the command table: "SET",
	// or "XGROUP CREATE" for a subcommand. It is never a copy of Args. It is
	// "" for a command the table does not know.
	Name string
	Kind Kind
	// Args are the arguments as given (not copied).
	Args [][]byte
	// Keys are the indexes into Args of the keys, ascending. The slice may
	// be shared with other calls: read it, never write to it.
	Keys []int
	// Flags are the command's flags from the table.
	Flags Flag

	spec *spec
	err  error
	// slot caches Slot: slotKnown says it is computed; slotErr is its error.
	slot      int32
	slotKnown bool
	slotErr   error
	// one backs the Parts of a command in one slot: no allocation.
	one [1]Part
}

// Has reports whether the command has every flag of f.
func (c *Command) Has(f Flag) bool { return c.Flags&f == f }

// Err is the parse error of a command Parse refused (nil for a parsed one).
// A refused command still carries its Args (and its Name when the table
// knows it), so that callers can pass it on and report it.
func (c *Command) Err() error { return c.err }

// Display is the command's name for a message: the table's name, or its
// first argument in upper case when the table does not know it.
func (c *Command) Display() string {
	if c.Name != "" {
		return c.Name
	}
	if len(c.Args) == 0 {
		return "(empty command)"
	}
	return strings.ToUpper(string(c.Args[0]))
}

// Key returns the i-th key (i indexes Keys, not Args).
func (c *Command) Key(i int) []byte { return c.Args[c.Keys[i]] }

// Type is the data type the command writes (0: generic, or none).
func (c *Command) Type() DataType {
	if c.spec == nil {
		return 0
	}
	return c.spec.typ
}

// Reads are the data types a store may read from its source keys.
func (c *Command) Reads() DataType {
	if c.spec == nil {
		return 0
	}
	return c.spec.in
}

// Shape is what the command does with several keys (see Shape).
func (c *Command) Shape() Shape {
	if c.spec == nil {
		return ShapeTogether
	}
	return c.spec.shape
}

// Step is the number of arguments each key of a ShapeSplit command takes,
// the key included: 1 for DEL, 2 for MSET.
func (c *Command) Step() int {
	if len(c.Keys) > 1 {
		return c.Keys[1] - c.Keys[0]
	}
	if c.spec != nil && c.spec.step > 1 {
		return int(c.spec.step)
	}
	return 1
}

// DBArgs are the indexes into Args of the db numbers the command names:
// SELECT db, SWAPDB a b, MOVE key db, COPY src dst DB db. The slice is
// shared: read it, never write to it.
func (c *Command) DBArgs() []int {
	if c.Flags&DBArg == 0 || c.err != nil {
		return nil
	}
	switch c.Name {
	case "SELECT":
		return seq[1:2:2]
	case "SWAPDB":
		return seq[1:3:3]
	case "MOVE":
		return seq[2:3:3]
	case "COPY":
		for i := 3; i+1 < len(c.Args); i++ {
			if is(c.Args[i], "DB") {
				return seq[i+1 : i+2 : i+2]
			}
		}
	}
	return nil
}

// Slot returns the one slot all keys of the command hash to, or NoSlot for a
// keyless command. When the keys span slots it returns a *CrossSlotError;
// for a Splittable command its Splittable is set, and Parts splits it. A
// command Parse refused returns its parse error. The result is cached: the
// keys are hashed once.
func (c *Command) Slot() (int, error) {
	if c.err != nil {
		return NoSlot, c.err
	}
	if !c.slotKnown {
		s, err := c.computeSlot()
		c.slot, c.slotErr, c.slotKnown = int32(s), err, true
	}
	return int(c.slot), c.slotErr
}

func (c *Command) computeSlot() (int, error) {
	if len(c.Keys) == 0 {
		return NoSlot, nil
	}
	first := Slot(c.Args[c.Keys[0]])
	for _, k := range c.Keys[1:] {
		if s := Slot(c.Args[k]); s != first {
			return NoSlot, &CrossSlotError{
				Command:    c.Name,
				Keys:       [2][]byte{c.Args[c.Keys[0]], c.Args[k]},
				Slots:      [2]int{first, s},
				Splittable: c.Kind == KeyedSplittable,
			}
		}
	}
	return first, nil
}

// Parts returns the command as one Part per slot of its keys.
//
//   - A keyless command is one Part with Slot NoSlot.
//   - A command whose keys are all in one slot is one Part holding Args
//     itself (not a copy).
//   - A Splittable command (DEL, UNLINK, TOUCH, EXISTS, MSET) whose keys
//     span slots is one command per slot, in the order each slot first
//     appears, every part keeping its keys (with MSET their values) in their
//     original order: DEL a b c → DEL a c, DEL b when a and c share a slot.
//     The parts share the argument bytes with Args.
//   - Any other command whose keys span slots is a *CrossSlotError.
//
// A command Parse refused returns its parse error. The slice of a command in
// one slot is held in c (Parts does not allocate then): read it before c
// changes.
func (c *Command) Parts() ([]Part, error) {
	slot, err := c.Slot()
	if err == nil {
		c.one[0] = Part{Slot: slot, Args: c.Args}
		return c.one[:], nil
	}
	if c.err != nil || c.Kind != KeyedSplittable {
		return nil, err
	}
	return c.split(), nil
}

// Parse looks args[0] (and args[1] for a subcommand) up in the table
// case-insensitively, checks the number of arguments, and finds the keys (the
// shard channel of SPUBLISH counts as its key: a cluster routes it so). It
// does not allocate for commands whose keys are a contiguous run or
// every-other argument (which covers every command with a fixed key
// position, DEL/UNLINK/EXISTS/TOUCH/MSET up to a few hundred keys...).
//
// On error the Command returned still holds Args, Kind Invalid, the error
// (Err) and, when the table knows the command, its Name and Flags.
func (t *Table) Parse(args [][]byte) (Command, error) {
	s, keys, err := t.find(args)
	if err != nil {
		return refused(args, s, err)
	}
	c := Command{Name: s.name, Args: args, Keys: keys, Flags: s.flags, spec: s}
	if s.foldIf != nil {
		c.Flags |= s.foldIf(args)
	}
	switch {
	case len(keys) == 0:
		c.Kind = Keyless
	case s.flags&Splittable != 0:
		c.Kind = KeyedSplittable
	default:
		c.Kind = KeyedSingle
	}
	return c, nil
}

// find looks the command up and finds its keys; with an error, the spec is
// the command's when the table knows it.
func (t *Table) find(args [][]byte) (*spec, []int, error) {
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("%w: empty command", ErrMalformed)
	}
	s := t.idx.find(args[0])
	if s == nil {
		return nil, nil, fmt.Errorf("%w %s", ErrUnknownCommand, quote(args[0]))
	}
	if s.subs != nil {
		if len(args) < 2 {
			return s, nil, fmt.Errorf("%w: %s needs a subcommand", ErrMalformed, s.name)
		}
		sub := s.subIdx.find(args[1])
		if sub == nil {
			return nil, nil, fmt.Errorf("%w %s %s", ErrUnknownCommand, s.name, quote(args[1]))
		}
		s = sub
	}
	n := len(args)
	if s.arity >= 0 && n != int(s.arity) || s.arity < 0 && n < -int(s.arity) {
		return s, nil, fmt.Errorf("%w: wrong number of arguments for %s (%d)", ErrMalformed, s.name, n-1)
	}
	if s.find == findNone {
		return s, nil, fmt.Errorf("%w %s: %v", ErrNoKeys, s.name, errNoKeySpec)
	}
	keys, err := s.keys(args)
	if err != nil {
		return s, nil, fmt.Errorf("%w: %s: %s", ErrMalformed, s.name, err)
	}
	return s, keys, nil
}

func refused(args [][]byte, s *spec, err error) (Command, error) {
	c := Command{Args: args, err: err}
	if s != nil {
		c.Name, c.Flags = s.name, s.flags
	}
	return c, err
}

// zaddPlain: a ZADD of score-member pairs only. Its options (NX, XX, GT,
// LT, CH, INCR) all come before the first score, and a run of plain ZADDs
// on one key means one ZADD of all their pairs (a member given twice takes
// the later score, as it would one by one).
func zaddPlain(args [][]byte) Flag {
	if len(args) < 4 || len(args)%2 != 0 {
		return 0
	}
	for _, o := range zaddOptions {
		if bytes.EqualFold(args[2], o) {
			return 0
		}
	}
	return Fold
}

// setPlain: a SET of a key and a value only. It overwrites the key whatever
// its type and drops its TTL, as MSET does each of its pairs, so a run of
// them on any keys is one MSET; an option (EX, PX, KEEPTTL, NX, GET...)
// would change that.
func setPlain(args [][]byte) Flag {
	if len(args) == 3 {
		return FoldKeys
	}
	return 0
}

var zaddOptions = [][]byte{[]byte("NX"), []byte("XX"), []byte("GT"), []byte("LT"), []byte("CH"), []byte("INCR")}
