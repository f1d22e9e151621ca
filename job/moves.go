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
// RESTORE of the key and A's stream a DEL of it — in that order in time, on
// two nodes. ferry applies the streams independently, each with its own lag,
// so A's commands on the key could reach the target after B's RESTORE: A's
// migration DEL would delete the key for good, A's writes from before the
// move would be applied twice.
//
// ferry's readers take every shard's stream as it arrives, so the time a
// command was received orders commands of different shards roughly as they
// happened. Roughly: MIGRATE blocks the old master while it runs, so A's
// writes from just before a move reach ferry just after B's RESTORE (by the
// command's duration, milliseconds), and a busy reader adds its own delay.
// A RESTORE from stream B received at T makes B the key's owner. A command
// on the key from another stream is then:
//   - a DEL: A's move DEL (A cannot delete a key it no longer holds):
//     dropped, and the entry ends — A has nothing left to say on the key;
//   - anything else received before T + moveWindow: A's history from
//     before the move, already in the RESTORE's payload: dropped;
//   - anything later: that stream owns the key now (its slot moved on
//     while the key did not exist, so no RESTORE came): applied, and it
//     becomes the owner.
//
// A DEL from A applied before B's RESTORE is harmless: the RESTORE recreates
// the key.
//
// Entries are forgotten once every stream has applied everything it received
// before them. A migration during the initial snapshot is not covered: two
// snapshots taken at different times may both hold the key. Do not reshard
// the source while ferry takes its first snapshot.
type moves struct {
	mu       sync.Mutex
	owner    map[string]moveEntry
	n        atomic.Int64 // entries, read without the lock on the hot path
	progress []atomic.Int64
	inserts  int
}

type moveEntry struct {
	stream int
	at     time.Time
}

// moveWindow bounds how late, after the RESTORE, the old owner's writes
// from before a move can reach ferry: MIGRATE's own duration plus a
// reader's scheduling delay, with a wide margin.
const moveWindow = time.Second

func newMoves(streams int) *moves {
	return &moves{owner: map[string]moveEntry{}, progress: make([]atomic.Int64, streams)}
}

// applied records that stream has applied everything it received up to at.
func (m *moves) applied(stream int, at time.Time) {
	if m != nil && stream < len(m.progress) {
		m.progress[stream].Store(at.UnixNano())
	}
}

func (m *moves) set(key []byte, e moveEntry) {
	if _, ok := m.owner[string(key)]; !ok {
		m.n.Add(1)
	}
	m.owner[string(key)] = e
	m.inserts++
	if m.inserts%1024 == 0 {
		m.forget()
	}
}

func (m *moves) drop(key []byte) {
	if _, ok := m.owner[string(key)]; ok {
		delete(m.owner, string(key))
		m.n.Add(-1)
	}
}

// forget drops entries no stream can still contradict: every stream applied
// all it received until well after them. Called with m.mu held.
func (m *moves) forget() {
	oldest := int64(-1)
	for i := range m.progress {
		if p := m.progress[i].Load(); oldest < 0 || p < oldest {
			oldest = p
		}
	}
	limit := time.Unix(0, oldest).Add(-moveWindow)
	for k, e := range m.owner {
		if e.at.Before(limit) {
			delete(m.owner, k)
			m.n.Add(-1)
		}
	}
}

// keep decides one key of a command from stream received at recv.
func (m *moves) keep(stream int, key []byte, recv time.Time, isDel bool) bool {
	e, ok := m.owner[string(key)]
	switch {
	case !ok || e.stream == stream:
		return true
	case isDel:
		m.drop(key)
		return false
	case recv.Before(e.at.Add(moveWindow)):
		return false
	}
	m.set(key, moveEntry{stream: stream, at: recv})
	return true
}

// filterMoved applies the ownership rule to one stream command received at
// recv. It returns the command to apply (nil: drop it). RESTOREs are made
// REPLACE: on the source the key did not exist on its new shard, but on the
// target it may still be there from the old one.
func (m *moves) filterMoved(stream int, args [][]byte, recv time.Time) [][]byte {
	name := args[0]
	if eq(name, "RESTORE-ASKING") || eq(name, "RESTORE") {
		if m != nil && len(args) > 1 {
			m.mu.Lock()
			m.set(args[1], moveEntry{stream: stream, at: recv})
			m.mu.Unlock()
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
		if m.keep(stream, args[k], recv, isDel) {
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
