package apply

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/internal/notify"
	"github.com/ferry-dev/ferry/router"
)

// moves keeps a cluster source's slot migrations in order across streams.
//
// When the source moves a key from shard A to shard B (MIGRATE, as
// `redis-cli --cluster reshard` does), B's replication stream carries a
// RESTORE of the key and A's stream a DEL of it. ferry applies the streams
// independently, each with its own lag, so A's commands on the key can reach
// the target after B's RESTORE: A's move DEL would delete the key for good,
// and A's writes from just before the move — MIGRATE blocks A while it runs,
// so they even reach ferry after the RESTORE — would be applied twice.
//
// A key lives on one shard at a time, so the source's commands on it form
// one history, and a RESTORE that moves it carries that history's state.
// ferry orders the streams by when it received their commands:
//
//   - A RESTORE from stream B records that B holds the key since the
//     RESTORE's receive time, and waits until every other stream's units on
//     the slot routed before are applied: nothing routed before the move
//     reaches the target after it. Every RESTORE: a slot that went to a
//     stream that lags and came back shows no move.
//   - Another stream's command on the key received before that RESTORE is
//     history, in the payload: dropped. This includes a RESTORE: when the
//     key moves twice (A to B to C) and B's stream lags C's, B's RESTORE and
//     B's writes come after C's RESTORE and are dropped.
//   - Another stream's first command on the key received after the RESTORE
//     is the old owner's move DEL (dropped) — the key left it, and nothing
//     else comes from it until it gets the key back. A write instead means
//     the stream holds the key anew (the slot came back empty and the key
//     was created again there): it and the rest apply.
//
// Receive times stand in for the source's order: each stream is read by its
// own reader, which keeps up with the source far better than the streams'
// appliers do with the target. A slot moves key by key, and a key's moves
// are at least a MIGRATE round trip apart, the cases below much more. What
// jitter between the readers could still do: an old owner's write received
// after the RESTORE is applied (harmless if it is the same history: the
// payload has it, but a list push or an INCR would count twice), and a move
// DEL received before it leaves the record to be forgotten.
//
// The record is forgotten once the old owner's move DEL came and every other
// stream applied everything it received until the RESTORE, or else once
// they all applied everything received until well after it.
//
// A migration during the initial snapshot is not covered: two snapshots
// taken at different times may both hold the key. Do not reshard the source
// while ferry takes its first snapshot. Neither is a key its slot left
// while it did not exist and that was created anew on the new shard: no
// RESTORE orders the old shard's late commands on it against the new one's.
type Moves struct {
	mu   sync.Mutex
	slot [router.SlotCount]int32 // slot → stream that owns it (-1: unknown)
	// prev[slot] is the slot's owner before the stream that restored into it
	// last (-1: none): keys move one MIGRATE at a time, so the slot's keys
	// restored after its first still come from there.
	prev [router.SlotCount]int32
	// last[stream][slot] is the unit number of the stream's last command on
	// the slot: a RESTORE moving a key waits until every other stream's is
	// applied, so that nothing routed before the move can reach the target
	// after it.
	last     [][router.SlotCount]atomic.Uint64
	keys     map[string]*moved // key → its last move, until forgotten
	n        atomic.Int64      // records, read without the lock on the hot path
	progress []atomic.Int64
	inserts  int
	// entered[s] and exited[s] count the units stream s started and
	// finished routing: a move's wait covers the unit in between.
	entered, exited []atomic.Uint64
	exitNote        notify.Notifier // a stream exited a unit (see settle)
}

// moved is a key's last move: stream by holds it since at.
type moved struct {
	by int
	at time.Time // receive time of the RESTORE
	// said: the streams whose first command on the key received after at
	// came (the old owner's move DEL, or a write on the key anew); del: one
	// of them was a DEL.
	said []int
	del  bool
}

// moveForget is how long after the RESTORE a record whose move DEL never
// came (or came first) is kept once every other stream applied past it.
const moveForget = time.Minute

// foreignOwner marks a slot of a source shard another process takes
// (shards I/N).
const foreignOwner = -2

// NewMoves starts from the source's shards: stream i owns slots[i]; the
// foreign slots belong to shards other processes take.
func NewMoves(slots [][][2]int, foreign [][2]int) *Moves {
	m := &Moves{keys: map[string]*moved{}, progress: make([]atomic.Int64, len(slots)),
		entered: make([]atomic.Uint64, len(slots)), exited: make([]atomic.Uint64, len(slots)), last: make([][router.SlotCount]atomic.Uint64, len(slots))}
	for i := range m.slot {
		m.slot[i], m.prev[i] = -1, -1
	}
	for i, rs := range slots {
		for _, r := range rs {
			for s := r[0]; s <= r[1]; s++ {
				m.slot[s] = int32(i)
			}
		}
	}
	for _, r := range foreign {
		for s := r[0]; s <= r[1]; s++ {
			m.slot[s] = foreignOwner
		}
	}
	return m
}

// ErrCrossProcessMove: a key moved into this process's shards from a shard
// another process of a split sync takes. The two processes apply their
// streams independently: the key's old writes may reach the target after
// its move (and its move DEL after its new writes); nothing here can order
// them.
var ErrCrossProcessMove = errors.New("the source moved a key from a shard another process takes (shards I/N) into one this process takes")

// foreignMove reports whether c is a RESTORE by stream of a key whose slot
// belongs to another process's shard.
func (m *Moves) foreignMove(stream int, c *router.Command) bool {
	if m == nil || len(c.Args) < 2 || !isRestore(c) {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := router.Slot(c.Args[1])
	return m.slot[s] == foreignOwner || (m.slot[s] == int32(stream) && m.prev[s] == foreignOwner)
}

// applied records that stream has applied everything it received up to at.
func (m *Moves) Applied(stream int, at time.Time) {
	if m != nil && stream < len(m.progress) {
		m.progress[stream].Store(at.UnixNano())
	}
}

// past reports whether every stream but r.by applied everything it received
// until t. Called with m.mu held.
func (m *Moves) past(r *moved, t time.Time) bool {
	for i := range m.progress {
		if i != r.by && m.progress[i].Load() < t.UnixNano() {
			return false
		}
	}
	return true
}

// forget drops the records nothing can need any more (see Moves). Called
// with m.mu held.
func (m *Moves) forget() {
	for k, r := range m.keys {
		if r.del && m.past(r, r.at) || m.past(r, r.at.Add(moveForget)) {
			delete(m.keys, k)
		}
	}
	m.n.Store(int64(len(m.keys)))
}

// note records that stream's unit seq had a command on slot.
func (m *Moves) note(stream, slot int, seq uint64) {
	if stream < len(m.last) {
		m.last[stream][slot].Store(seq)
	}
}

// enter and exit bracket a unit a stream routes (from before its commands
// are checked against the moves until their slots are noted).
func (m *Moves) enter(stream int) {
	if stream < len(m.entered) {
		m.entered[stream].Add(1)
	}
}

func (m *Moves) exit(stream int) {
	if stream < len(m.exited) {
		m.exited[stream].Add(1)
		m.exitNote.Notify()
	}
}

// settle waits until stream finished the unit it was routing, if any: a
// command it checked before a move was recorded is noted by then, and one
// checked after sees the record.
func (m *Moves) settle(ctx context.Context, stream int) error {
	if stream >= len(m.entered) {
		return nil
	}
	n := m.entered[stream].Load()
	for {
		exited := m.exitNote.Wait()
		if m.exited[stream].Load() >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
		}
	}
}

// isRestore: RESTORE or RESTORE-ASKING, the commands a slot migration
// replicates to the importing shard.
func isRestore(c *router.Command) bool {
	return c.Name == "RESTORE" || c.Name == "RESTORE-ASKING"
}

// own records that stream owns slot s now. Called with m.mu held.
func (m *Moves) own(stream, s int) {
	if o := m.slot[s]; o != int32(stream) {
		m.prev[s], m.slot[s] = o, int32(stream)
	}
}

// routed is the unit number of stream's last command on key's slot.
func (m *Moves) routed(stream int, key []byte) uint64 {
	return m.last[stream][router.Slot(key)].Load()
}

// streams is how many streams the registry orders.
func (m *Moves) streams() int { return len(m.last) }

// restored handles a RESTORE of key from stream, received at recv. It
// reports false for a RESTORE that is history: the key moved on since (to
// be dropped).
func (m *Moves) restored(stream int, key []byte, recv time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := router.Slot(key)
	r := m.keys[string(key)]
	if r != nil && r.by != stream && recv.Before(r.at) {
		return false // a RESTORE of a stream that lags: the key moved on from it
	}
	// Every RESTORE is taken for a move, even of a slot ferry saw on this
	// stream last: the slot may have gone to a stream that lags and come
	// back, with ferry yet to see any of it.
	m.own(stream, s)
	if r == nil {
		r = &moved{}
		m.keys[string(key)] = r
		m.n.Add(1)
	}
	*r = moved{by: stream, at: recv, said: r.said[:0]}
	if m.inserts++; m.inserts%1024 == 0 {
		m.forget()
	}
	return true
}

// holds reports whether the last move of key recorded is still the one
// stream's RESTORE received at recv made.
func (m *Moves) holds(stream int, key []byte, recv time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.keys[string(key)]
	return r == nil || r.by == stream && r.at.Equal(recv)
}

// keep decides one key of a command from stream received at recv (see
// Moves). Called with m.mu held.
func (m *Moves) keep(stream int, key []byte, isDel bool, recv time.Time) bool {
	r := m.keys[string(key)]
	if r == nil || r.by == stream {
		return true
	}
	if recv.Before(r.at) {
		return false // history, in the RESTORE's payload
	}
	if slices.Contains(r.said, stream) {
		return true
	}
	r.said = append(r.said, stream)
	if !isDel {
		return true // the key is the stream's anew
	}
	// The old owner's move DEL: its last word on the key.
	r.del = true
	if m.past(r, r.at) {
		delete(m.keys, string(key))
		m.n.Add(-1)
	}
	return false
}

// filterMoved applies the ownership rule to one stream command, parsed. It
// returns the command to apply (nil: drop it). RESTOREs are made REPLACE: on
// the source the key did not exist on its new shard, but on the target it
// may still be there from the old one.
func (m *Moves) filterMoved(stream int, c *router.Command, recv time.Time) *router.Command {
	if isRestore(c) {
		if m != nil && len(c.Args) > 1 && !m.restored(stream, c.Args[1], recv) {
			return nil
		}
		return restoreReplace(c)
	}
	if m == nil || m.n.Load() == 0 || c.Err() != nil || len(c.Keys) == 0 {
		return c
	}
	args, keys := c.Args, c.Keys
	isDel := c.Name == "DEL" || c.Name == "UNLINK"
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := make([]bool, len(keys))
	n := 0
	for i, k := range keys {
		if m.keep(stream, args[k], isDel, recv) {
			kept[i] = true
			n++
		}
	}
	switch {
	case n == len(keys):
		return c
	case n == 0 || c.Kind != router.KeyedSplittable || !isDel:
		// Keys of one command share a slot, and slots move whole: a
		// command that cannot be split goes with its first key's verdict.
		if kept[0] {
			return c
		}
		return nil
	}
	out := [][]byte{args[0]}
	for i, k := range keys {
		if kept[i] {
			out = append(out, args[k])
		}
	}
	return reparse(out)
}

// reparse parses a command ferry rewrote (RESTORE ... REPLACE, DEL of some
// keys): always one of the built-in table.
func reparse(args [][]byte) *router.Command {
	c, _ := router.Parse(args)
	return &c
}

// restoreReplace turns RESTORE-ASKING into RESTORE and makes sure REPLACE is
// given.
func restoreReplace(c *router.Command) *router.Command {
	args := c.Args
	replace := false
	if len(args) >= 4 {
		for _, a := range args[4:] {
			if eq(a, "REPLACE") {
				replace = true
			}
		}
	}
	if replace && c.Name == "RESTORE" {
		return c
	}
	out := make([][]byte, 0, len(args)+1)
	out = append(out, bRestore)
	out = append(out, args[1:]...)
	if len(args) >= 4 && !replace { // a malformed one: the target says so
		out = append(out, bReplace)
	}
	return reparse(out)
}
