package router

import (
	"errors"
	"fmt"
)

// ErrCrossSlot is matched (errors.Is) by every *CrossSlotError.
var ErrCrossSlot = errors.New("CROSSSLOT")

// CrossSlotError is the error for a command whose keys span slots when it
// cannot be split into one command per slot without changing its meaning.
type CrossSlotError struct {
	Command    string    // canonical name, e.g. "RENAME"
	Keys       [2][]byte // the first key, and the first key in another slot
	Slots      [2]int    // their slots
	Splittable bool      // SplitBySlot would split it (only SlotOf says so)
}

func (e *CrossSlotError) Error() string {
	why := "cannot apply atomically on a cluster"
	switch {
	case e.Splittable:
		why = "needs one command per slot (SplitBySlot)"
	case e.Command == "MSETNX":
		why = "cannot keep MSETNX all-or-nothing on a cluster"
	}
	return fmt.Sprintf("CROSSSLOT: %s %s %s spans slots %d and %d: %s",
		e.Command, quote(e.Keys[0]), quote(e.Keys[1]), e.Slots[0], e.Slots[1], why)
}

func (e *CrossSlotError) Is(target error) bool { return target == ErrCrossSlot }

// Part is one command of a split: its slot and its arguments.
type Part struct {
	Slot int // NoSlot for a keyless command
	Args [][]byte
}

// SlotOf returns the one slot all keys of the command hash to, NoSlot for a
// keyless command, and the command's Kind. When the keys span slots it
// returns a *CrossSlotError; for a KeyedSplittable command its Splittable is
// set, and SplitBySlot splits it. SlotOf allocates only when it fails, or
// when Parse does.
func SlotOf(args [][]byte) (slot int, kind Kind, err error) {
	c, err := Parse(args)
	if err != nil {
		return NoSlot, Invalid, err
	}
	slot, err = c.slot()
	if err != nil {
		return NoSlot, Invalid, err
	}
	return slot, c.Kind, nil
}

// slot is the one slot of c's keys, or a *CrossSlotError.
func (c *Command) slot() (int, error) {
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

// SplitBySlot returns the command as one Part per slot of its keys.
//
//   - A keyless command is one Part with Slot NoSlot.
//   - A command whose keys are all in one slot is one Part holding args
//     itself (not a copy).
//   - A KeyedSplittable command (DEL, UNLINK, TOUCH, EXISTS, MSET) whose keys
//     span slots is one command per slot, in the order each slot first
//     appears, every part keeping its keys (with MSET their values) in their
//     original order: DEL a b c → DEL a c, DEL b when a and c share a slot.
//     The parts share the argument bytes with args.
//   - Any other command whose keys span slots is a *CrossSlotError.
//
// Unknown commands and malformed arguments are errors, as for Parse.
func SplitBySlot(args [][]byte) ([]Part, error) {
	c, err := Parse(args)
	if err != nil {
		return nil, err
	}
	slot, err := c.slot()
	if err == nil {
		return []Part{{Slot: slot, Args: args}}, nil
	}
	if c.Kind != KeyedSplittable {
		return nil, err
	}
	return c.split(), nil
}

// split cuts a KeyedSplittable command whose keys run from Keys[0] to the end
// of Args, each key followed by step-1 arguments of its own (MSET's value).
func (c *Command) split() []Part {
	step := 1
	if len(c.Keys) > 1 {
		step = c.Keys[1] - c.Keys[0]
	}
	head := c.Args[:c.Keys[0]] // the name (and anything before the first key)
	slots := make([]int, len(c.Keys))
	index := make(map[int]int) // slot → part
	var parts []Part
	var count []int // keys per part
	for i, k := range c.Keys {
		s := Slot(c.Args[k])
		slots[i] = s
		p, ok := index[s]
		if !ok {
			p = len(parts)
			index[s] = p
			parts = append(parts, Part{Slot: s})
			count = append(count, 0)
		}
		count[p]++
	}
	all := make([][]byte, len(parts)*len(head)+len(c.Keys)*step)
	next := make([]int, len(parts)) // where part p's next key goes in all
	o := 0
	for p, n := range count {
		size := len(head) + n*step
		parts[p].Args = all[o : o+size : o+size]
		copy(all[o:], head)
		next[p] = o + len(head)
		o += size
	}
	for i, k := range c.Keys {
		p := index[slots[i]]
		next[p] += copy(all[next[p]:], c.Args[k:k+step])
	}
	return parts
}
