// The ledger: what was submitted, what is in flight and what the target
// acknowledged. The job's goroutines (Submit and the queries), the sender,
// the reply reader and the resume after a drop all move batches through it,
// so it has one owner and one lock.

package writer

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// ledger accounts for every batch from Submit until the target has applied
// it (or it is sent back for routing): queued, being sent, in flight,
// acknowledged. Each change wakes its waiters — Submit's back-pressure,
// Drain, the sender, and the job through Changed — so nobody polls.
type ledger struct {
	cfg ledgerConfig

	// mu guards every field below up to the counters, and whatever the arm
	// callbacks of push and acknowledge touch (the session's read deadline),
	// so that the deadline follows the flights in the order they come and go.
	mu   sync.Mutex
	cond *notifyCond // on mu: every change is broadcast

	queue       []*Batch
	queuedBytes int64
	// sending: batches taken off the queue and not yet in flight (Drain
	// must not see an idle writer meanwhile).
	sending       int
	inflight      []*flight
	inflightBytes int64
	// probing: the last flight taken holds a command the target has not
	// taken yet; nothing more is taken until it is answered (skipFenced).
	probing bool
	// replaying: flights in flight that went out unfenced (flight.replay);
	// no flight with a command that must run once is taken meanwhile.
	replaying int
	// senderSleeps counts the times the sender went to sleep in takeNext.
	senderSleeps int

	applied    map[int]Position  // stream → position of its last batch acknowledged
	streamKey  map[int]string    // standalone: stream → its marker key
	acked      map[string]uint64 // marker key → last unit acknowledged under it
	redirected []Op              // sent back for routing, in the order they were sent
	injected   map[*Batch]bool   // batches of re-routed ops not yet applied
	fatal      error

	// skipFenced: command names the target refused while queueing (and
	// why), and names it has taken.
	refusedNames map[string]string
	takenNames   map[string]bool

	// What was acknowledged, for Stats (atomic: read without mu).
	batches, ops, bytes, groups atomic.Int64
}

type ledgerConfig struct {
	slotted    bool
	skipFenced bool   // see Writer.skipFenced
	marker     string // standalone: the marker of a batch that names none
	maxQueued  int64
	limits     sendLimits
	// onSkip counts and logs a command dropped as refused (called with mu
	// held).
	onSkip func(what, why string)
}

// newLedger starts an empty ledger. found are the markers on the target
// before the writer started: a standalone target that later loses one has
// rewound.
func newLedger(cfg ledgerConfig, found map[string]Position) *ledger {
	l := &ledger{cfg: cfg, applied: map[int]Position{}, streamKey: map[int]string{},
		acked: map[string]uint64{}, injected: map[*Batch]bool{}}
	l.cond = &notifyCond{Cond: sync.NewCond(&l.mu), send: sync.NewCond(&l.mu)}
	if !cfg.slotted {
		for k, p := range found {
			l.acked[k] = p.Seq
		}
	}
	return l
}

// notifyCond is a sync.Cond whose broadcasts can also be awaited in a
// select, with a context (see Writer.Changed). Broadcast is called with the
// cond's lock held, which also guards ch.
//
// The sender waits apart (send), so that a change that cannot give it a
// flight need not wake it (see changedLocked): under a steady load a
// flight gathers two or three batches while the one before it is
// outstanding, and the sender woke for each and for acknowledgements that
// left it nothing to send, found no flight and slept again — 2.2 wake-ups
// per flight sent.
type notifyCond struct {
	*sync.Cond
	send *sync.Cond    // the sender, in takeNext
	ch   chan struct{} // closed and cleared by the next Broadcast
}

// Broadcast wakes every waiter.
func (c *notifyCond) Broadcast() {
	c.send.Broadcast()
	c.others()
}

// others wakes every waiter but the sender.
func (c *notifyCond) others() {
	c.Cond.Broadcast()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// changed is closed at the ledger's next change.
func (l *ledger) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cond.ch == nil {
		l.cond.ch = make(chan struct{})
	}
	return l.cond.ch
}

// wake lets every waiter look again (a context was cancelled, a connection
// closed).
func (l *ledger) wake() {
	l.mu.Lock()
	l.cond.Broadcast()
	l.mu.Unlock()
}

// submit queues b once fewer than maxQueued bytes are queued.
func (l *ledger) submit(ctx context.Context, b *Batch) error {
	stop := context.AfterFunc(ctx, l.wake)
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.fatal == nil && ctx.Err() == nil && l.queuedBytes >= l.cfg.maxQueued && len(l.queue) > 0 {
		l.cond.Wait()
	}
	if l.fatal != nil {
		return l.fatal
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.queue = append(l.queue, b)
	l.queuedBytes += int64(b.Size())
	l.changedLocked()
	return nil
}

// changedLocked wakes every waiter after a batch was queued or a flight
// acknowledged — the sender only if it would take a flight now: a sender
// that would find none sleeps on until a change that gives it one. It
// also leaves takeNext for an error, which setFatal and a cancelled
// context announce to all.
func (l *ledger) changedLocked() {
	if n, _ := l.flightLocked(); n > 0 || l.cfg.skipFenced || l.fatal != nil {
		// (under skipFenced takeNext's probe decides: see probeHeadLocked)
		l.cond.Broadcast()
		return
	}
	l.cond.others()
}

// inject queues b, made of re-routed commands, ahead of everything: they
// are older than anything queued. Until b is applied, applied does not claim
// its units.
func (l *ledger) inject(b *Batch) {
	l.mu.Lock()
	l.injected[b] = true
	l.queue = append([]*Batch{b}, l.queue...)
	l.queuedBytes += int64(b.Size())
	l.cond.Broadcast()
	l.mu.Unlock()
}

// takeNext waits for the next flight's batches (see sendLimits) and takes
// them off the queue. Before it waits it runs idle without the lock (the
// sender flushes its buffer: nothing may sit in it while the sender sleeps).
func (l *ledger) takeNext(ctx context.Context, idle func() error) ([]*Batch, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	idled := false
	for {
		if l.fatal != nil {
			return nil, l.fatal
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// After a flight with a command the target has not taken yet,
		// nothing goes out until it is answered (see probeHeadLocked).
		held := l.probing && len(l.inflight) > 0
		if !held && l.roomLocked() {
			if l.cfg.skipFenced {
				l.probing = l.probeHeadLocked()
			}
			if n, size := l.flightLocked(); n > 0 {
				bs := append([]*Batch(nil), l.queue[:n]...)
				clear(l.queue[:n])
				l.queue = l.queue[n:]
				l.queuedBytes -= int64(size)
				l.sending += n
				l.cond.Broadcast()
				return bs, nil
			}
		}
		if !idled {
			l.mu.Unlock()
			err := idle()
			l.mu.Lock()
			if err != nil {
				return nil, err
			}
			idled = true
			continue
		}
		l.senderSleeps++
		l.cond.send.Wait()
		idled = false
	}
}

// roomLocked reports whether something is queued and there is room in
// flight for it (a flight goes out alone whatever its size).
func (l *ledger) roomLocked() bool {
	return len(l.queue) > 0 && (l.inflightBytes < l.cfg.limits.maxInflight || len(l.inflight) == 0)
}

// flightLocked is how many batches at the head of the queue (and how many
// bytes) the sender may take as its next flight now, the probe of
// skipFenced aside; 0: none. takeNext takes them, and changedLocked wakes
// the sender only when there are some.
//
// While an unfenced flight of idempotent commands is out, only such
// flights follow it: after a dropped connection it is sent again from its
// first unanswered command, and whatever ran after that must be harmless
// to run again.
func (l *ledger) flightLocked() (n, size int) {
	if !l.roomLocked() {
		return 0, 0
	}
	n, size = l.cfg.limits.selectFlight(l.queue, l.inflightBytes, len(l.inflight))
	if n > 0 && l.replaying > 0 && !replayable(l.queue[:n]) {
		return 0, 0
	}
	return n, size
}

// probeHeadLocked prepares the head of the queue for skipFenced: commands
// the target refused before are taken out and counted as skipped, and it
// reports whether the batch holds a command the target has not taken yet.
// Such a batch goes out with nothing pipelined behind it, so that if the
// target refuses it, nothing after it has run and the batch can be sent
// again without the refused command, in order. Once every command name in
// the stream has been taken, batches are pipelined as usual.
func (l *ledger) probeHeadLocked() bool {
	b := l.queue[0]
	if l.refusedNames == nil {
		l.refusedNames, l.takenNames = map[string]string{}, map[string]bool{}
	}
	var drop map[int]bool
	probe := false
	for i := range b.ops {
		name := commandName(b.op(i))
		if why, ok := l.refusedNames[name]; ok {
			if drop == nil {
				drop = map[int]bool{}
			}
			drop[i] = true
			l.cfg.onSkip(b.Describe(i), why)
			continue
		}
		if !l.takenNames[name] {
			probe = true
		}
	}
	if drop != nil {
		nb := b.without(func(i int) bool { return drop[i] })
		l.queuedBytes += int64(nb.Size() - b.Size())
		l.replaceInjectedLocked(b, nb)
		b.Release()
		l.queue[0] = nb
	}
	return probe
}

// replaceInjectedLocked carries b's injected mark over to nb, what is left
// of it.
func (l *ledger) replaceInjectedLocked(b, nb *Batch) {
	if l.injected[b] {
		delete(l.injected, b)
		l.injected[nb] = true
	}
}

// requeue puts batches taken by takeNext back at the head of the queue:
// they were not sent.
func (l *ledger) requeue(bs []*Batch) {
	l.mu.Lock()
	l.sending -= len(bs)
	l.queue = append(append([]*Batch(nil), bs...), l.queue...)
	for _, b := range bs {
		l.queuedBytes += int64(b.Size())
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

// push records f as in flight, before any of it is sent: the reply reader
// must find it. arm(true) runs when f is the only flight. After a fatal
// error nothing more goes out: push returns it, and f's batches are no
// longer being sent.
func (l *ledger) push(f *flight, arm func(outstanding bool)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sending -= len(f.batches)
	if l.fatal != nil {
		return l.fatal
	}
	l.inflight = append(l.inflight, f)
	l.inflightBytes += f.size
	if f.replay {
		l.replaying++
	}
	if len(l.inflight) == 1 {
		arm(true)
	}
	return nil
}

// head is the oldest flight in flight (nil: none), the one the next reply
// answers.
func (l *ledger) head() *flight {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.inflight) == 0 {
		return nil
	}
	return l.inflight[0]
}

// idle reports whether nothing is in flight.
func (l *ledger) idle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.inflight) == 0
}

// acknowledge retires f, the head flight, once all of it is answered. Its
// batches are acknowledged unless ack is false: after a refusal, a group
// that did not run leaves a hole, and nothing from it on is recorded as
// applied. arm reports whether flights remain outstanding.
func (l *ledger) acknowledge(f *flight, ack bool, arm func(outstanding bool)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.inflight) == 0 || l.inflight[0] != f {
		return
	}
	l.inflight[0] = nil
	l.inflight = l.inflight[1:]
	l.inflightBytes -= f.size
	defer f.release()
	if f.replay {
		l.replaying--
	}
	defer l.changedLocked()
	defer func() { arm(len(l.inflight) > 0) }()
	if f.resent {
		// Its batch went back to the queue, without what was refused.
		f.batches[0].Release()
		return
	}
	if l.cfg.skipFenced && l.takenNames != nil && len(f.batches) == 1 {
		// The group ran: the target takes these commands.
		b := f.batches[0]
		for i := range b.ops {
			l.takenNames[commandName(b.op(i))] = true
		}
	}
	if !ack {
		return
	}
	for i := range f.groups {
		g := &f.groups[i]
		if g.status == statusApplied && g.marker != "" && l.cfg.slotted {
			l.acked[g.marker] = max(l.acked[g.marker], g.seq)
		}
	}
	l.groups.Add(int64(len(f.groups)))
	for _, b := range f.batches {
		l.ackBatchLocked(b)
	}
}

// ackBatchLocked records that every command of b is applied.
func (l *ledger) ackBatchLocked(b *Batch) {
	if !l.injected[b] {
		l.applied[b.Stream] = b.Pos
	}
	delete(l.injected, b)
	if !l.cfg.slotted {
		key := b.markerOr(l.cfg.marker)
		l.acked[key] = max(l.acked[key], b.Pos.Seq)
		l.streamKey[b.Stream] = key
	}
	l.batches.Add(1)
	l.ops.Add(int64(b.Len()))
	l.bytes.Add(int64(b.Size()))
	b.Release()
}

// redirect takes commands idx of g (in flight f) out for routing again: the
// target said their slot is elsewhere. The rest of their batches is
// acknowledged with the flight.
func (l *ledger) redirect(f *flight, g *group, idx []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f.redirectedOps == nil {
		f.redirectedOps = map[*Batch]map[int]bool{}
	}
	for _, k := range idx {
		at := g.ops[k]
		b := f.batches[at.b]
		if f.redirectedOps[b] == nil {
			f.redirectedOps[b] = map[int]bool{}
		}
		f.redirectedOps[b][int(at.i)] = true
		l.redirected = append(l.redirected, b.takeOp(int(at.i)))
	}
	if len(idx) == len(g.ops) {
		g.status = statusRedirected
	}
}

// redirectedOps are the commands sent back for routing, oldest first.
func (l *ledger) redirectedOps() []Op {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Op(nil), l.redirected...)
}

// dropRedirected forgets the first n redirected commands (routed again).
func (l *ledger) dropRedirected(n int) {
	l.mu.Lock()
	l.redirected = append([]Op(nil), l.redirected[min(n, len(l.redirected)):]...)
	l.mu.Unlock()
}

// resend puts the batch of f — a flight of one group, aborted because the
// target refused some of its commands while queueing (drop: command → the
// refusal) — back at the head of the queue without them, which are counted
// as skipped and dropped from later batches before they are sent. false:
// flights with batches were sent after f and may have run; the refusal
// stands.
func (l *ledger) resend(f *flight, drop map[int]string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := slices.Index(l.inflight, f)
	if at < 0 {
		return false
	}
	for _, later := range l.inflight[at+1:] {
		if later.batches != nil {
			return false
		}
	}
	if l.refusedNames == nil {
		l.refusedNames, l.takenNames = map[string]string{}, map[string]bool{}
	}
	b := f.batches[0]
	for k, why := range drop {
		l.refusedNames[commandName(b.op(k))] = why
		l.cfg.onSkip(b.Describe(k), why)
	}
	nb := b.without(func(i int) bool { _, ok := drop[i]; return ok })
	l.replaceInjectedLocked(b, nb)
	l.queue = append([]*Batch{nb}, l.queue...)
	l.queuedBytes += int64(nb.Size())
	f.resent = true
	l.cond.Broadcast()
	return true
}

// markerKeys are the markers a new connection reads: every one acknowledged
// under, and those of the groups in flight.
func (l *ledger) markerKeys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.acked)+8)
	seen := map[string]bool{}
	add := func(k string) {
		if k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for k := range l.acked {
		add(k)
	}
	for _, f := range l.inflight {
		for i := range f.groups {
			add(f.groups[i].marker)
		}
	}
	return keys
}

// requeueAfterDrop settles what was in flight when a connection dropped,
// from the target's markers: the groups it applied are acknowledged, and
// what it did not apply goes back to the head of the queue, in the order it
// was sent, to be sent again. A marker below what was acknowledged under it
// means the target rewound (the error's Endpoint is left to the caller).
func (l *ledger) requeueAfterDrop(markers map[string]Position) (nApplied, nBack int, rewound *RewoundError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, seq := range l.acked {
		p, found := markers[k]
		if !found && l.cfg.slotted {
			// A slot can leave this master (resharding) with its marker; the
			// job notices through MOVED, not here.
			continue
		}
		if !found || p.Seq < seq {
			return 0, 0, &RewoundError{Key: k, Found: found, Marker: p, Acked: seq}
		}
	}

	// Groups were applied in the order they were sent: find the prefix.
	appliedOps := map[*Batch]map[int]bool{}
	done := true
	for _, f := range l.inflight {
		for i := range f.groups {
			g := &f.groups[i]
			if done && g.status == statusPending {
				// An unfenced flight's markers do not vouch for the
				// commands before them: one may have failed (a transient
				// error) while the rest ran.
				if p, ok := markers[g.marker]; ok && p.Seq >= g.seq && g.seq > 0 && !f.replay {
					g.status = statusApplied
				} else {
					done = false
				}
			}
			switch g.status {
			case statusApplied:
				nApplied++
				l.acked[g.marker] = max(l.acked[g.marker], g.seq)
				for _, o := range g.ops {
					b := f.batches[o.b]
					if appliedOps[b] == nil {
						appliedOps[b] = map[int]bool{}
					}
					appliedOps[b][int(o.i)] = true
				}
			case statusRedirected:
				// already taken out by the reply reader
			default:
				nBack++
			}
		}
	}
	var back []*Batch
	prefix := true
	for _, f := range l.inflight {
		for _, b := range f.batches {
			drop := appliedOps[b]
			red := f.redirectedOps[b]
			if prefix && len(drop)+len(red) == b.Len() {
				l.ackBatchLocked(b)
				continue
			}
			prefix = false
			l.ops.Add(int64(len(drop))) // applied; the batch is acknowledged with the rest
			nb := b.without(func(i int) bool { return drop[i] || red[i] })
			l.replaceInjectedLocked(b, nb)
			b.Release()
			back = append(back, nb)
			l.queuedBytes += int64(nb.Size())
		}
	}
	l.inflight = l.inflight[:0]
	l.inflightBytes = 0
	l.replaying = 0
	l.probing = false
	l.queue = append(back, l.queue...)
	l.cond.Broadcast()
	return nApplied, nBack, nil
}

// replayable reports whether every command of bs is idempotent (or there
// is none, position updates only): such a flight may follow an unfenced one
// unanswered, and with commands it goes out unfenced itself (planFlight).
func replayable(bs []*Batch) bool {
	for _, b := range bs {
		if !b.replayable() {
			return false
		}
	}
	return true
}

// drain waits until nothing is queued, being sent or in flight.
func (l *ledger) drain(ctx context.Context) error {
	stop := context.AfterFunc(ctx, l.wake)
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.fatal == nil && ctx.Err() == nil && (len(l.queue) > 0 || len(l.inflight) > 0 || l.sending > 0) {
		l.cond.Wait()
	}
	if l.fatal != nil {
		return l.fatal
	}
	return ctx.Err()
}

// landed waits until nothing is in flight (what is queued stays).
func (l *ledger) landed(ctx context.Context) error {
	stop := context.AfterFunc(ctx, l.wake)
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.inflight) > 0 && l.fatal == nil && ctx.Err() == nil {
		l.cond.Wait()
	}
	if l.fatal != nil {
		return l.fatal
	}
	return ctx.Err()
}

// dropQueued forgets what was submitted and not taken yet.
func (l *ledger) dropQueued() {
	l.mu.Lock()
	for _, b := range l.queue {
		l.queuedBytes -= int64(b.Size())
		delete(l.injected, b)
		b.Release()
	}
	l.queue = nil
	l.cond.Broadcast()
	l.mu.Unlock()
}

// lastApplied is the position of the stream's last batch acknowledged and
// its marker (standalone).
func (l *ledger) lastApplied(stream int) (Position, string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.applied[stream]
	return p, l.streamKey[stream], ok
}

// appliedAt is lastApplied, its offset kept below the stream's redirected
// and injected commands: they are not applied yet.
func (l *ledger) appliedAt(stream int) (Position, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.applied[stream]
	for _, o := range l.redirected {
		if o.Stream == stream {
			p.Offset = min(p.Offset, o.Off-1)
		}
	}
	for b := range l.injected {
		if b.Stream != stream {
			continue
		}
		for i := range b.ops {
			p.Offset = min(p.Offset, b.ops[i].off-1)
		}
	}
	return p, ok
}

// pending reports whether batches of the stream are submitted and not
// acknowledged (batches being sent count for every stream).
func (l *ledger) pending(stream int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.queue {
		if b.Stream == stream {
			return true
		}
	}
	for _, f := range l.inflight {
		for _, b := range f.batches {
			if b.Stream == stream {
				return true
			}
		}
	}
	return l.sending > 0
}

// err is the fatal error, if any.
func (l *ledger) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

// setFatal records err unless an error is recorded already: the first one
// is what the job hears about.
func (l *ledger) setFatal(err error) {
	l.mu.Lock()
	if l.fatal == nil {
		l.fatal = err
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

// sizes are the bytes queued and in flight.
func (l *ledger) sizes() (queued, inflight int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queuedBytes, l.inflightBytes
}

// dirtyMarks are the markers that say the target is at no source position:
// each stream's last position acknowledged in order, in state dirty.
func (l *ledger) dirtyMarks(streamMarker func(stream int) string) map[string]Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	marks := map[string]Position{}
	for stream, p := range l.applied {
		key := l.streamKey[stream]
		if l.cfg.slotted {
			key = streamMarker(stream)
		}
		p.State = StateDirty
		marks[key] = p
	}
	return marks
}
