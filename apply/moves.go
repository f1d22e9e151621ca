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
// Each stream is in the source's order; across streams ferry has the
// structure of a move (the new owner's RESTORE, then the old owner's DEL)
// and the receive times, which its readers take a few milliseconds apart:
//
//   - A RESTORE from stream B records that B holds the key since the
//     RESTORE's receive time, and waits until every other stream's units on
//     the slot routed before are applied: nothing routed before the move
//     reaches the target after it. Every RESTORE: a slot that went to a
//     stream that lags and came back shows no move.
//   - The streams that may have held the key before — the last record's
//     owner and those it still waited for, and every stream that held the
//     slot (its shard's at the start, or a RESTORE of one of its keys) —
//     owe the move's DEL: what they say on the key is history, dropped,
//     until their DEL received after the RESTORE, dropped too. Not their
//     first command after it: a lagging reader can receive the old owner's
//     writes from just before the move after the RESTORE.
//   - Another stream's command on the key received before that RESTORE is
//     history, in the payload: dropped. This includes a RESTORE: when the
//     key moves twice (A to B to C) and B's stream lags C's, B's RESTORE and
//     B's writes come after C's RESTORE and are dropped, and B owes its DEL.
//   - After its DEL, an old owner's write received within moveSkew of the
//     RESTORE means the DEL was a user's, from before the move: it owes the
//     move's DEL again. One received later is the key created anew there
//     (the slot came back while the key did not exist): it applies.
//   - A stream that owes nothing (it never held the slot, as far as ferry
//     saw): its first command on the key received after the RESTORE is a
//     move DEL ferry did not expect (dropped), or a write on the key anew,
//     which applies with the rest.
//
// What the receive times cannot order: two moves of one key closer together
// than the readers' skew (the later RESTORE, received first, makes the
// earlier one history, and the owner in between loses its writes), and a
// key created anew on its old owner within moveSkew of its move (dropped
// as history until that stream's next DEL of it). An old owner's move DEL
// received before the RESTORE (its reader ahead) leaves it owing until the
// record is forgotten: harmless, it writes the key again only after a
// RESTORE of its own, unless the key is created anew there.
//
// The record is forgotten once every old owner's DEL came and every other
// stream applied everything it received until moveSkew after the RESTORE,
// or else once they all applied everything received until moveForget
// after it.
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
	// held[stream][slot]: the stream held the slot, or keys of it, at some
	// point (its shard's at the start, or a RESTORE of one of its keys).
	held [][router.SlotCount]bool
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
	// owe: the streams that may have held the key before the RESTORE and
	// whose DEL of it has not come yet: until it does, what they say on
	// the key is history. ended: those whose DEL came. said: the other
	// streams whose first command on the key received after at came.
	owe, ended, said []int
}

// moveSkew bounds how far apart two readers' receive times may be for the
// same moment of the source (see Moves).
const moveSkew = 250 * time.Millisecond

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
		entered: make([]atomic.Uint64, len(slots)), exited: make([]atomic.Uint64, len(slots)), last: make([][router.SlotCount]atomic.Uint64, len(slots)),
		held: make([][router.SlotCount]bool, len(slots))}
	for i := range m.slot {
		m.slot[i], m.prev[i] = -1, -1
	}
	for i, rs := range slots {
		for _, r := range rs {
			for s := r[0]; s <= r[1]; s++ {
				m.slot[s] = int32(i)
				m.held[i][s] = true
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
		if len(r.owe) == 0 && m.past(r, r.at.Add(moveSkew)) || m.past(r, r.at.Add(moveForget)) {
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

// fromOf is the stream a key of slot s restored by stream comes from (-1:
// none known): the slot's owner, or the one before if stream owns it
// already (its keys move one at a time). Called with m.mu held.
func (m *Moves) fromOf(stream, s int) int {
	if o := int(m.slot[s]); o != stream {
		return o
	}
	if p := int(m.prev[s]); p != stream {
		return p
	}
	return -1
}

// addStream adds i to set, once, if it is a stream.
func (m *Moves) addStream(set []int, i int) []int {
	if i < 0 || i >= len(m.last) || slices.Contains(set, i) {
		return set
	}
	return append(set, i)
}

// restored handles a RESTORE of key from stream, received at recv. It
// reports false for a RESTORE that is history: the key moved on since (to
// be dropped).
func (m *Moves) restored(stream int, key []byte, recv time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := router.Slot(key)
	r := m.keys[string(key)]
	m.held[stream][s] = true
	if r != nil && r.by != stream && recv.Before(r.at) {
		// A RESTORE of a stream that lags: the key moved on from it, and
		// it owes the DEL of that move.
		r.said = slices.DeleteFunc(r.said, func(i int) bool { return i == stream })
		r.ended = slices.DeleteFunc(r.ended, func(i int) bool { return i == stream })
		r.owe = m.addStream(r.owe, stream)
		return false
	}
	// Every RESTORE is taken for a move, even of a slot ferry saw on this
	// stream last: the slot may have gone to a stream that lags and come
	// back, with ferry yet to see any of it.
	from := m.fromOf(stream, s)
	m.own(stream, s)
	var owe []int
	if r == nil {
		r = &moved{}
		m.keys[string(key)] = r
		m.n.Add(1)
	} else {
		// The key's holders before: the last one, and those that still
		// owe the DEL of an earlier move.
		owe = m.addStream(r.owe[:0], r.by)
	}
	owe = m.addStream(owe, from)
	for i := range m.held {
		if m.held[i][s] {
			owe = m.addStream(owe, i)
		}
	}
	owe = slices.DeleteFunc(owe, func(i int) bool { return i == stream })
	*r = moved{by: stream, at: recv, owe: owe, ended: r.ended[:0], said: r.said[:0]}
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
	if i := slices.Index(r.owe, stream); i >= 0 {
		// An old owner: history until its DEL, the move's, which the
		// source ran after the RESTORE.
		if isDel && !recv.Before(r.at) {
			r.owe = slices.Delete(r.owe, i, i+1)
			r.ended = append(r.ended, stream)
			if len(r.owe) == 0 && m.past(r, r.at.Add(moveSkew)) {
				delete(m.keys, string(key))
				m.n.Add(-1)
			}
		}
		return false
	}
	if recv.Before(r.at) {
		return false // history, in the RESTORE's payload
	}
	if i := slices.Index(r.ended, stream); i >= 0 {
		if !recv.Before(r.at.Add(moveSkew)) {
			return true // the slot came back, the key was created anew
		}
		if !isDel {
			// The DEL was a user's, history too: the move's is to come.
			r.ended = slices.Delete(r.ended, i, i+1)
			r.owe = append(r.owe, stream)
		}
		return false
	}
	if slices.Contains(r.said, stream) {
		return true
	}
	r.said = append(r.said, stream)
	// A stream ferry did not know held the key: its first word after the
	// RESTORE is its move DEL (dropped), or a write on the key anew.
	return !isDel
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
