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
	Splittable bool      // Parts would split it (only Slot says so)
}

func (e *CrossSlotError) Error() string {
	why := "cannot apply atomically on a cluster"
	switch {
	case e.Splittable:
		why = "needs one command per slot (Parts)"
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
// keyless command, and the command's Kind (see Command.Slot). SlotOf
// allocates only when it fails, or when Parse does.
func SlotOf(args [][]byte) (slot int, kind Kind, err error) {
	c, err := Parse(args)
	if err != nil {
		return NoSlot, Invalid, err
	}
	slot, err = c.Slot()
	if err != nil {
		return NoSlot, Invalid, err
	}
	return slot, c.Kind, nil
}

// SplitBySlot parses args and returns its Parts.
func SplitBySlot(args [][]byte) ([]Part, error) {
	c, err := Parse(args)
	if err != nil {
		return nil, err
	}
	// Not c.Parts: its one-part slice lives in c, which would escape.
	slot, err := c.Slot()
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
