package apply

import (
	"context"
	"errors"
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
// So ferry tracks which stream each slot belongs to: first from the source's
// topology, then from what the streams show. A RESTORE from stream B of a
// key whose slot belonged to stream A records that the key moved from A to
// B; the slot's later RESTOREs on B come from A too (a slot moves one key at
// a time, and A keeps the keys not moved yet). Until A's DEL of the key — its
// last word on it — A's commands on the key are history from before the
// move, already in the RESTORE's payload: dropped. Any other stream's are
// applied. A key that moves on (B to C) before A's DEL came waits for both
// A's and B's.
//
// A DEL from A applied before B's RESTORE is harmless: the RESTORE recreates
// the key; the record it leaves is forgotten once A has applied everything
// it received until well after it.
//
// A migration during the initial snapshot is not covered: two snapshots
// taken at different times may both hold the key. Do not reshard the source
// while ferry takes its first snapshot.
type Moves struct {
	mu   sync.Mutex
	slot [router.SlotCount]int32 // slot → stream that owns it (-1: unknown)
	// prev[slot] is the slot's owner before the stream that restored into it
	// last (-1: none): keys move one MIGRATE at a time, so the slot's keys
	// restored after its first still come from there.
	prev [router.SlotCount]int32
	// last[stream][slot] is the unit number of the stream's last command on
	// the slot: a RESTORE moving a key away from a stream waits until that
	// is applied, so that nothing the old owner routed before the move can
	// reach the target after it.
	last     [][router.SlotCount]atomic.Uint64
	keys     map[string][]moved // key → the streams it moved away from, until their DEL
	n        atomic.Int64       // records, read without the lock on the hot path
	progress []atomic.Int64
	inserts  int
	// entered[s] and exited[s] count the units stream s started and
	// finished routing: a move's wait covers the unit in between.
	entered, exited []atomic.Uint64
	exitNote        notify.Notifier // a stream exited a unit (see settle)
}

type moved struct {
	from int
	at   time.Time // receive time of the RESTORE
}

// moveForget is how long after the RESTORE a record whose DEL never came
// (it came first) is kept once the old owner applied past it.
const moveForget = time.Minute

// foreignOwner marks a slot of a source shard another process takes
// (shards I/N).
const foreignOwner = -2

// NewMoves starts from the source's shards: stream i owns slots[i]; the
// foreign slots belong to shards other processes take.
func NewMoves(slots [][][2]int, foreign [][2]int) *Moves {
	m := &Moves{keys: map[string][]moved{}, progress: make([]atomic.Int64, len(slots)),
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

// drop removes key's record for stream from. Called with m.mu held.
func (m *Moves) drop(key []byte, from int) {
	m.dropIf(string(key), func(e moved) bool { return e.from == from })
}

func (m *Moves) dropIf(key string, gone func(moved) bool) {
	es := m.keys[key]
	kept := es[:0]
	for _, e := range es {
		if !gone(e) {
			kept = append(kept, e)
		}
	}
	m.n.Add(int64(len(kept) - len(es)))
	if len(kept) == 0 {
		delete(m.keys, key)
	} else {
		m.keys[key] = kept
	}
}

// forget drops records whose old owner applied everything it received until
// well after them. Called with m.mu held.
func (m *Moves) forget() {
	for k := range m.keys {
		m.dropIf(k, func(e moved) bool {
			return e.from < len(m.progress) && time.Unix(0, m.progress[e.from].Load()).After(e.at.Add(moveForget))
		})
	}
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

// restoreFrom returns the stream a RESTORE takes its key from (-1: it does
// not move a key between streams).
func (m *Moves) restoreFrom(stream int, c *router.Command) int {
	if m == nil || len(c.Args) < 2 || !isRestore(c) {
		return -1
	}
	m.mu.Lock()
	from := m.fromOf(stream, router.Slot(c.Args[1]))
	m.mu.Unlock()
	if from < 0 || from >= len(m.last) {
		return -1
	}
	return from
}

// fromOf is the stream a key of slot s restored by stream comes from (-1:
// none known). Called with m.mu held.
func (m *Moves) fromOf(stream, s int) int {
	if o := int(m.slot[s]); o != stream {
		return o
	}
	if p := int(m.prev[s]); p != stream {
		return p
	}
	return -1
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

// restored handles a RESTORE of key from stream.
func (m *Moves) restored(stream int, key []byte, recv time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := router.Slot(key)
	from := m.fromOf(stream, s)
	m.own(stream, s)
	// Whatever this stream said before about the key ended with its DEL
	// when the key left it: it owns the key now.
	m.drop(key, stream)
	if from < 0 {
		return // not a move between streams (or one ferry cannot place)
	}
	m.drop(key, from)
	m.keys[string(key)] = append(m.keys[string(key)], moved{from: from, at: recv})
	m.n.Add(1)
	if m.inserts++; m.inserts%1024 == 0 {
		m.forget()
	}
}

// keep decides one key of a command from stream: false while the key has
// moved away from the stream and the stream's DEL of it has not come.
// Called with m.mu held.
func (m *Moves) keep(stream int, key []byte, isDel bool) bool {
	for _, e := range m.keys[string(key)] {
		if e.from == stream {
			if isDel {
				m.drop(key, stream)
			}
			return false
		}
	}
	return true
}

// filterMoved applies the ownership rule to one stream command, parsed. It
// returns the command to apply (nil: drop it). RESTOREs are made REPLACE: on
// the source the key did not exist on its new shard, but on the target it
// may still be there from the old one.
func (m *Moves) filterMoved(stream int, c *router.Command, recv time.Time) *router.Command {
	if isRestore(c) {
		if m != nil && len(c.Args) > 1 {
			m.restored(stream, c.Args[1], recv)
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
		if m.keep(stream, args[k], isDel) {
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
