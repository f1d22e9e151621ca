package job

import (
	"sync"
	"sync/atomic"
	"time"

	"ferry/router"
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
// B. Until A's DEL of the key — its last word on it — a command on the key
// is then:
//   - from B (its owner): applied;
//   - from A: history from before the move, already in the RESTORE's
//     payload: dropped (its DEL ends the record);
//   - from a third stream: the slot moved on (the key did not exist then,
//     so no RESTORE came): applied, and that stream owns the key now.
//
// A DEL from A applied before B's RESTORE is harmless: the RESTORE recreates
// the key; the record it leaves is forgotten once A has applied everything
// it received until well after it.
//
// A migration during the initial snapshot is not covered: two snapshots
// taken at different times may both hold the key. Do not reshard the source
// while ferry takes its first snapshot.
type moves struct {
	mu   sync.Mutex
	slot [router.SlotCount]int32 // slot → stream that owns it (-1: unknown)
	// last[stream][slot] is the unit number of the stream's last command on
	// the slot: a RESTORE moving a key away from a stream waits until that
	// is applied, so that nothing the old owner routed before the move can
	// reach the target after it.
	last     [][router.SlotCount]atomic.Uint64
	keys     map[string]moved
	n        atomic.Int64 // records, read without the lock on the hot path
	progress []atomic.Int64
	inserts  int
}

type moved struct {
	owner, from int
	at          time.Time // receive time of the RESTORE
}

// moveForget is how long after the RESTORE a record whose DEL never came
// (it came first) is kept once the old owner applied past it.
const moveForget = time.Minute

// newMoves starts from the source's shards: stream i owns slots[i].
func newMoves(slots [][][2]int) *moves {
	m := &moves{keys: map[string]moved{}, progress: make([]atomic.Int64, len(slots)), last: make([][router.SlotCount]atomic.Uint64, len(slots))}
	for i := range m.slot {
		m.slot[i] = -1
	}
	for i, rs := range slots {
		for _, r := range rs {
			for s := r[0]; s <= r[1]; s++ {
				m.slot[s] = int32(i)
			}
		}
	}
	return m
}

// applied records that stream has applied everything it received up to at.
func (m *moves) applied(stream int, at time.Time) {
	if m != nil && stream < len(m.progress) {
		m.progress[stream].Store(at.UnixNano())
	}
}

func (m *moves) drop(key []byte) {
	if _, ok := m.keys[string(key)]; ok {
		delete(m.keys, string(key))
		m.n.Add(-1)
	}
}

// forget drops records whose old owner applied everything it received until
// well after them. Called with m.mu held.
func (m *moves) forget() {
	for k, e := range m.keys {
		if e.from < len(m.progress) && time.Unix(0, m.progress[e.from].Load()).After(e.at.Add(moveForget)) {
			delete(m.keys, k)
			m.n.Add(-1)
		}
	}
}

// note records the unit number of a command a stream routed.
func (m *moves) note(stream int, args [][]byte, seq uint64) {
	if m == nil || len(args) < 2 || stream >= len(m.last) {
		return
	}
	if slot, _, err := router.SlotOf(args); err == nil && slot >= 0 {
		m.last[stream][slot].Store(seq)
	}
}

// restoreFrom returns the stream a RESTORE takes its key from (-1: it does
// not move a key between streams).
func (m *moves) restoreFrom(stream int, args [][]byte) int {
	if m == nil || len(args) < 2 || !(eq(args[0], "RESTORE-ASKING") || eq(args[0], "RESTORE")) {
		return -1
	}
	m.mu.Lock()
	from := int(m.slot[router.Slot(args[1])])
	m.mu.Unlock()
	if from == stream || from >= len(m.last) {
		return -1
	}
	return from
}

// routed is the unit number of stream's last command on key's slot.
func (m *moves) routed(stream int, key []byte) uint64 {
	return m.last[stream][router.Slot(key)].Load()
}

// restored handles a RESTORE of key from stream.
func (m *moves) restored(stream int, key []byte, recv time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := router.Slot(key)
	from := int(m.slot[s])
	m.slot[s] = int32(stream)
	if from < 0 || from == stream {
		return // not a move between streams (or one ferry cannot place)
	}
	if _, ok := m.keys[string(key)]; !ok {
		m.n.Add(1)
	}
	m.keys[string(key)] = moved{owner: stream, from: from, at: recv}
	if m.inserts++; m.inserts%1024 == 0 {
		m.forget()
	}
}

// keep decides one key of a command from stream. Called with m.mu held.
func (m *moves) keep(stream int, key []byte, isDel bool) bool {
	e, ok := m.keys[string(key)]
	switch {
	case !ok || e.owner == stream:
		return true
	case e.from == stream:
		if isDel {
			m.drop(key)
		}
		return false
	}
	e.owner = stream // the slot moved on
	m.keys[string(key)] = e
	m.slot[router.Slot(key)] = int32(stream)
	return true
}

// filterMoved applies the ownership rule to one stream command. It returns
// the command to apply (nil: drop it). RESTOREs are made REPLACE: on the
// source the key did not exist on its new shard, but on the target it may
// still be there from the old one.
func (m *moves) filterMoved(stream int, args [][]byte, recv time.Time) [][]byte {
	name := args[0]
	if eq(name, "RESTORE-ASKING") || eq(name, "RESTORE") {
		if m != nil && len(args) > 1 {
			m.restored(stream, args[1], recv)
		}
		return restoreReplace(args)
	}
	if m == nil || m.n.Load() == 0 {
		return args
	}
	keys, kind, err := router.Keys(args)
	if err != nil || len(keys) == 0 {
		return args
	}
	isDel := eq(name, "DEL") || eq(name, "UNLINK")
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
		return args
	case n == 0 || kind != router.KeyedSplittable || !isDel:
		// Keys of one command share a slot, and slots move whole: a
		// command that cannot be split goes with its first key's verdict.
		if kept[0] {
			return args
		}
		return nil
	}
	out := [][]byte{args[0]}
	for i, k := range keys {
		if kept[i] {
			out = append(out, args[k])
		}
	}
	return out
}

// restoreReplace turns RESTORE-ASKING into RESTORE and makes sure REPLACE is
// given.
func restoreReplace(args [][]byte) [][]byte {
	out := make([][]byte, 0, len(args)+1)
	out = append(out, []byte("RESTORE"))
	out = append(out, args[1:]...)
	if len(args) < 4 {
		return out // malformed: the target says so
	}
	for _, a := range args[4:] {
		if eq(a, "REPLACE") {
			return out
		}
	}
	return append(out, []byte("REPLACE"))
}
