package target

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/notify"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/topology"
	"github.com/ferry-dev/ferry/writer"
)

// clusterTarget is a Redis Cluster: one writer per master, commands routed by
// slot, one fence marker per slot (it lives in its slot, so it moves with the
// slot's data when the cluster reshards, and replicates with it when a
// master fails over).
type clusterTarget struct {
	cfg    *Config
	seedMu sync.Mutex
	seeds  []string

	mu    sync.Mutex // guards ws, ns, homes and topo against status readers
	topo  *topology.Map
	ns    []*Node
	ws    []*writer.Writer
	ids   []string // writer → the node ID of its master
	homes []int    // writer → its home slot
	// owner maps a slot to its writer. Every key of every applier looks it
	// up; a table replaced whole on rediscovery lets the three appliers of
	// a cluster source read it without taking mu (which cost 2 % of ferry's
	// CPU in a cluster full sync).
	owner atomic.Pointer[slotOwners]

	slotMarks   map[int]writer.Position    // slot → its marker, found at start
	streamMarks map[string]writer.Position // stream markers found at start, by key
	seq         uint64

	// route is held shared by every applier while it routes a unit, and
	// exclusively by a re-route, which so sees all appliers at a unit
	// boundary.
	route    sync.RWMutex
	sinks    []*clusterSink
	redirect atomic.Bool     // a writer sent commands back (MOVED/ASK/TRYAGAIN)
	linkNote notify.Notifier // a writer's connection came up or went down, or a home moved
	// moved is set when a writer's stream marker met MOVED: watch ends the
	// attempt with it.
	moved atomic.Pointer[HomeMovedError]
	g     *errgroup.Group
	gctx  context.Context
}

// slotOwners maps each slot to the index of the writer of its master (-1: no
// master). int16, not int: the table is read for every key at random slots,
// and at 32 KB it stays in a core's L1 cache (as int32 its misses were 2.4 %
// of ferry's CPU in a cluster full sync). A cluster has at most one master
// a slot, so an index fits; see maxWriters.
type slotOwners [router.SlotCount]int16

// maxWriters bounds the writers a cluster target may have had (one for every
// master seen since start) so that an index fits slotOwners.
const maxWriters = math.MaxInt16

// streamMarker is the key, in a slot of the master whose home slot is home,
// that holds stream i's position for keyless commands and idle updates.
func streamMarker(job string, home, i int) string {
	return fmt.Sprintf("%s{%s}:%s:s%d", writer.OwnPrefix, router.TagForSlot(home), job, i)
}

// slotMarker is the key of the fence marker of a slot: a hash tag puts it in
// that slot.
func slotMarker(job string, slot int) string {
	return writer.OwnPrefix + "{" + router.TagForSlot(slot) + "}:" + job
}

func openCluster(ctx context.Context, c *Config) (*clusterTarget, error) {
	t := &clusterTarget{cfg: c, seeds: c.Seeds, slotMarks: map[int]writer.Position{}, streamMarks: map[string]writer.Position{}}
	if err := t.discover(ctx); err != nil {
		return nil, err
	}
	if err := t.readMarkers(ctx); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *clusterTarget) dialFor(addr string) (dial.Options, error) {
	return t.cfg.Dial(addr)
}

// discover reads the cluster's shape: writers whose master failed over follow
// their shard to its new master, a master new to ferry (resharding brought a
// node in) gets a writer, and the slot table is rebuilt.
func (t *clusterTarget) discover(ctx context.Context) error {
	m, err := t.topology(ctx)
	if err != nil {
		return err
	}
	if un := m.Unowned(); len(un) > 0 {
		return fmt.Errorf("target cluster: slots %v have no master (cluster_state not ok?)", un)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.follow(m)
	byID := map[string]int{}
	for i, id := range t.ids {
		byID[id] = i
	}
	for _, sh := range m.Shards {
		if len(sh.Slots) == 0 {
			continue
		}
		if _, ok := byID[sh.Master.ID]; ok {
			continue
		}
		if len(t.ids) >= maxWriters {
			return fmt.Errorf("target cluster: %d masters seen since start, more than ferry can route to (%d): restart the job", len(t.ids), maxWriters)
		}
		if err := t.addMaster(ctx, sh); err != nil {
			return err
		}
		byID[sh.Master.ID] = len(t.ids) - 1
	}
	owner := new(slotOwners)
	for s := range owner {
		owner[s] = -1
		if sh, ok := m.Owner(s); ok {
			owner[s] = int16(byID[m.Shards[sh].Master.ID])
		}
	}
	t.owner.Store(owner)
	t.topo = m
	return nil
}

func (t *clusterTarget) topology(ctx context.Context) (*topology.Map, error) {
	t.seedMu.Lock()
	seeds := slices.Clone(t.seeds)
	t.seedMu.Unlock()
	m, err := topology.Discover(ctx, seeds, func(addr string) *redis.Options {
		o, _ := t.dialFor(addr)
		return ctl.Options(o, "ferry-ctl-0", 0)
	})
	if err != nil {
		return nil, fmt.Errorf("target cluster: %w", err)
	}
	// Later discoveries may start from any node ferry has seen.
	t.seedMu.Lock()
	t.seeds = topology.MergeSeeds(t.seeds, m)
	t.seedMu.Unlock()
	return m, nil
}

// follow points each writer whose master is now a replica, or gone, at the
// master that serves its shard now. Called with t.mu held. The slots stay
// with the same writer, so the order of writes per slot is kept; what the
// old master acknowledged but never replicated is found by the markers (the
// writer reports a RewoundError).
func (t *clusterTarget) follow(m *topology.Map) {
	taken := map[string]bool{}
	for _, id := range t.ids {
		taken[id] = true
	}
	for i, id := range t.ids {
		var now *topology.Node
		for _, sh := range m.Shards {
			if sh.Master.ID == id {
				now = &sh.Master
				break
			}
			for _, r := range sh.Replicas {
				if r.ID == id && !taken[sh.Master.ID] {
					now = &sh.Master
				}
			}
		}
		if now == nil {
			// Failed and gone from the map: whoever serves its home slot.
			if n, ok := m.MasterOf(t.homes[i]); ok && !taken[n.ID] {
				now = &n
			}
		}
		if now == nil || (now.ID == id && now.Addr == t.ws[i].Addr()) {
			continue
		}
		o, err := t.dialFor(now.Addr)
		if err != nil {
			continue
		}
		t.cfg.Log.Warn().Str("old", t.ws[i].Addr()).Str("new", now.Addr).Str("conn", fmt.Sprintf("ferry-writer-%d", i)).
			Msg("target master failed over; following its slots to the new master")
		delete(taken, id)
		taken[now.ID] = true
		t.ids[i] = now.ID
		t.ws[i].Redial(o)
		t.ns[i].redial(o)
	}
}

// addMaster opens a control connection and a writer for a new master (at
// start, or when resharding brings a new node in). Called with t.mu held.
func (t *clusterTarget) addMaster(ctx context.Context, sh topology.Shard) error {
	o, err := t.dialFor(sh.Master.Addr)
	if err != nil {
		return err
	}
	n, err := OpenNode(ctx, o)
	if err != nil {
		return err
	}
	job := t.cfg.Job
	home := sh.Slots[0][0]
	n.LeaseKey = LeaseKey(job, home)
	if t.cfg.Lease != nil {
		if err := t.cfg.Lease.Acquire(ctx, n); err != nil {
			n.Close()
			return err
		}
	}
	if err := n.probe(ctx, writer.OwnPrefix+"{"+router.TagForSlot(home)+"}:"+job+":probe"); err != nil {
		n.Close()
		return err
	}
	i := len(t.ws)
	w := writer.New(t.cfg.writerConfig(i, n, func(stream int) int64 { return LowWatermark(t.Writers(), stream) }, writer.Config{
		// A cluster master's queue is where a backlog's commands are
		// coalesced into per-slot transactions: a deeper one makes bigger
		// groups and a cheaper fence under load.
		MaxQueued:    32 << 20,
		Slotted:      true,
		SlotMarker:   func(slot int) string { return slotMarker(job, slot) },
		StreamMarker: func(stream int) string { return streamMarker(job, home, stream) },
		OnRedirect:   func() { t.redirect.Store(true) },
		OnLink:       t.linkNote.Notify,
		OnMarkerMoved: func(msg string) {
			t.HomeMoved(&HomeMovedError{Addr: sh.Master.Addr, Key: LeaseKey(job, home), Err: errors.New(msg)})
		},
	}))
	t.ns = append(t.ns, n)
	t.ws = append(t.ws, w)
	t.ids = append(t.ids, sh.Master.ID)
	t.homes = append(t.homes, home)
	if t.g != nil {
		t.g.Go(func() error { return w.Run(t.gctx) })
	}
	return nil
}

// readMarkers reads every slot's marker and the stream markers of every
// master: whether this job wrote here before, where its streams resume,
// and the highest unit number used.
func (t *clusterTarget) readMarkers(ctx context.Context) error {
	job := t.cfg.Job
	for _, sh := range t.topo.Shards {
		if len(sh.Slots) == 0 {
			continue
		}
		wi := t.owner.Load()[sh.Slots[0][0]]
		n := t.ns[wi]
		p := n.Ctl.Pipeline()
		type ask struct {
			slot int // -1: a stream marker
			key  string
			cmd  *redis.StringCmd
		}
		var asks []ask
		for _, r := range sh.Slots {
			for s := r[0]; s <= r[1]; s++ {
				k := slotMarker(job, s)
				asks = append(asks, ask{s, k, p.Get(ctx, k)})
			}
		}
		for i := 0; i < MaxStreams; i++ {
			k := streamMarker(job, t.homes[wi], i)
			asks = append(asks, ask{-1, k, p.Get(ctx, k)})
		}
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("target %s: read markers: %w", n.Addr.Addr, err)
		}
		for _, a := range asks {
			v, err := a.cmd.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return fmt.Errorf("target %s: read marker %s: %w", n.Addr.Addr, a.key, err)
			}
			pos, err := writer.ParsePosition(v)
			if err != nil {
				return fmt.Errorf("target %s: %w", n.Addr.Addr, err)
			}
			t.seq = max(t.seq, pos.Seq)
			if a.slot >= 0 {
				t.slotMarks[a.slot] = pos
			} else {
				t.streamMarks[a.key] = pos
			}
		}
	}
	return nil
}

func (t *clusterTarget) Found() bool { return len(t.slotMarks)+len(t.streamMarks) > 0 }

// ResumeFor: every marker of the stream's replication history records the
// stream's global low watermark when it was written; the highest is where
// the stream resumes. Units above it are filtered per slot by the slot
// markers (see NewSink). A slot written only during the snapshot keeps a
// snapshot marker, which is fine once a live marker came after it (the
// snapshot completed); a snapshot marker newer than every live one means
// the snapshot was cut off, and a dirty one that the target is not at any
// position: a full resync either way.
func (t *clusterTarget) ResumeFor(i int, id, id2 string) (writer.Position, bool) {
	all := make([]writer.Position, 0, len(t.slotMarks)+len(t.streamMarks))
	for _, p := range t.slotMarks {
		all = append(all, p)
	}
	for _, p := range t.streamMarks {
		all = append(all, p)
	}
	best, ok := resumable(all, id, id2, func(a, b writer.Position) bool { return a.Low > b.Low })
	if !ok || best.Low < 0 {
		return writer.Position{}, false
	}
	best.Offset, best.DB = best.Low, 0
	return best, true
}

// resumable picks, among the markers of a replication history (id or id2),
// the best live one by better. A snapshot marker newer than every live one
// means the snapshot was cut off, and a dirty one that the target is at no
// position: no resume either way. Older snapshot markers are fine: the
// snapshot completed after them.
func resumable(markers []writer.Position, id, id2 string, better func(a, b writer.Position) bool) (writer.Position, bool) {
	var best writer.Position
	var lastSnap, lastLive uint64
	for _, p := range markers {
		if p.ReplID == "" || (p.ReplID != id && p.ReplID != id2) {
			continue
		}
		switch p.State {
		case writer.StateLive:
			if lastLive == 0 || better(p, best) {
				best = p
			}
			lastLive = max(lastLive, p.Seq)
		case writer.StateSnapshot:
			lastSnap = max(lastSnap, p.Seq)
		default:
			return writer.Position{}, false
		}
	}
	if lastLive == 0 || lastSnap > lastLive {
		return writer.Position{}, false
	}
	return best, true
}

func (t *clusterTarget) Writers() []*writer.Writer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.ws)
}

// writerCount is len(Writers()) without the copy: the sinks ask once per
// unit.
func (t *clusterTarget) writerCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ws)
}

func (t *clusterTarget) Nodes() []*Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.ns)
}

func (t *clusterTarget) MaxSeq() uint64 { return t.seq }
func (t *clusterTarget) Cluster() bool  { return true }

func (t *clusterTarget) Close() {
	for _, n := range t.Nodes() {
		n.Close()
	}
}

func (t *clusterTarget) Start(ctx context.Context, g *errgroup.Group) {
	t.mu.Lock()
	t.g, t.gctx = g, ctx
	ws := slices.Clone(t.ws)
	t.mu.Unlock()
	for _, w := range ws {
		g.Go(func() error { return w.Run(ctx) })
	}
	g.Go(func() error { return t.watch(ctx) })
}

// watch follows failovers: a writer that cannot reach its master for a while
// asks the cluster who serves that master's slots now, and redials there.
// What the old master acknowledged but did not replicate shows up as a
// marker that went back (a RewoundError), and the job resumes from the
// markers. After HomeMoved it also ends the attempt with a HomeMovedError
// once a reshard is over (see settle).
func (t *clusterTarget) watch(ctx context.Context) error {
	down := map[*writer.Writer]time.Time{} // since when a writer is down (or was last checked)
	var st settling
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// The channel first, then the state: a change in between closes it.
		changed := t.linkNote.Wait()
		var stale bool
		next := time.Duration(-1) // until the first down writer is stale
		for _, w := range t.Writers() {
			if w.Stats().Connected {
				delete(down, w)
				continue
			}
			if _, ok := down[w]; !ok {
				down[w] = time.Now()
			}
			left := followAfter - time.Since(down[w])
			if left <= 0 {
				stale = true
			} else if next < 0 || left < next {
				next = left
			}
		}
		if stale {
			if m, err := t.topology(ctx); err == nil {
				t.mu.Lock()
				t.follow(m)
				t.mu.Unlock()
			}
			for w := range down {
				down[w] = time.Now()
			}
			next = followAfter
		}
		if err := t.moved.Load(); err != nil {
			wait, end := t.settle(ctx, &st, err)
			if end != nil {
				return end
			}
			if wait >= 0 && (next < 0 || wait < next) {
				next = wait
			}
		}
		var expired <-chan time.Time
		if next >= 0 {
			timer.Reset(next)
			expired = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-expired:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// HomeMoved asks for a new attempt because a master's home slot moved
// (see HomeMovedError): watch ends this one with err once the cluster's
// slot map holds still. Meanwhile the attempt goes on: only that master's
// position records are lost (its writer's stream markers, its lease's
// renewal), and until the new attempt the stream's low watermark stands
// still, so the sooner the better — but not in the middle of a reshard.
func (t *clusterTarget) HomeMoved(err *HomeMovedError) {
	if t.moved.CompareAndSwap(nil, err) {
		t.linkNote.Notify()
	}
}

// settleFor is how long the slot map must hold still before a new attempt
// takes homes from it. A reshard moves slot after slot, a master's lowest
// first (redis-cli's reshard and rebalance): a new attempt in its middle
// would find its new home the next to move, and start again, each time
// from an older position.
const settleFor = 3 * time.Second

// settling is watch's progress towards a new attempt after HomeMoved:
// when it last read the slot map, and what it read.
type settling struct {
	at   time.Time
	last string
}

// settle takes one step once settleFor has passed since the last: it reads
// the slot map, and when the map is what it read the step before — held
// still — returns err if a home left its master (a new attempt follows),
// or forgets err if not (a failover: a replica answers MOVED until its
// writer follows the slots to the promoted one, which watch does
// meanwhile). wait is how long until the next step (-1: none).
func (t *clusterTarget) settle(ctx context.Context, st *settling, err *HomeMovedError) (wait time.Duration, end error) {
	if st.at.IsZero() {
		t.cfg.Log.Info().Err(err).Msg("a target master's home slot moved: waiting for the cluster's slot map to hold still before starting again")
	} else if left := settleFor - time.Since(st.at); left > 0 {
		return left, nil
	}
	st.at = time.Now()
	m, terr := t.topology(ctx)
	if terr != nil {
		return settleFor, nil
	}
	if now := m.String(); now != st.last {
		st.last = now
		return settleFor, nil
	}
	if t.homeLeft(m) {
		return -1, err
	}
	t.cfg.Log.Info().Msg("every target master's home slot is still its shard's (a failover, not a reshard): going on")
	t.moved.CompareAndSwap(err, nil)
	*st = settling{}
	return -1, nil
}

// homeLeft reports whether, in m, a writer's master still serves slots but
// not its home slot: a reshard moved the home. After a failover the shard
// that serves the home lists the writer's old master as a replica, or no
// longer lists it (it failed), and the writer follows the shard instead.
func (t *clusterTarget) homeLeft(m *topology.Map) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	masters := m.Masters() // those that serve a slot
	for i, id := range t.ids {
		if !slices.ContainsFunc(masters, func(n topology.Node) bool { return n.ID == id }) {
			continue
		}
		o, ok := m.Owner(t.homes[i])
		if !ok {
			return true
		}
		sh := m.Shards[o]
		if sh.Master.ID != id && !slices.ContainsFunc(sh.Replicas, func(r topology.Node) bool { return r.ID == id }) {
			return true
		}
	}
	return false
}

// followAfter is how long a master stays unreachable before the target asks
// the cluster who serves its slots now: long enough for a reconnect to a
// master that only dropped the connection, short against a failover's
// cluster-node-timeout.
const followAfter = time.Second

func (t *clusterTarget) RemoveMarkers(ctx context.Context) error {
	job := t.cfg.Job
	t.route.RLock()
	streams := len(t.sinks)
	t.route.RUnlock()
	// A reshard can have left an old home's keys only in a job that ran
	// before this attempt: one that started on a target without markers
	// and never started again is spared the 16384 × (streams+1) commands.
	leftovers := t.Found()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sh := range t.topo.Shards {
		if len(sh.Slots) == 0 {
			continue
		}
		wi := t.owner.Load()[sh.Slots[0][0]]
		n := t.ns[wi]
		home := t.homes[wi]
		p := n.Ctl.Pipeline()
		for _, r := range sh.Slots {
			for s := r[0]; s <= r[1]; s++ {
				p.Unlink(ctx, slotMarker(job, s))
				if s == home || !leftovers {
					continue
				}
				// What a reshard left here: the stream markers and the
				// lease of a master whose home this slot was (see
				// HomeMovedError).
				for i := range streams {
					p.Unlink(ctx, streamMarker(job, s, i))
				}
				p.Unlink(ctx, LeaseKey(job, s))
			}
		}
		for i := 0; i < MaxStreams; i++ {
			p.Unlink(ctx, streamMarker(job, home, i))
		}
		if _, err := p.Exec(ctx); err != nil {
			return fmt.Errorf("target %s: remove markers: %w", n.Addr.Addr, err)
		}
	}
	return nil
}

func (t *clusterTarget) NewSink(f Feed) Sink {
	c := t.cfg
	s := &clusterSink{t: t, f: f, maxOps: c.BatchMaxOps, maxBytes: c.BatchMaxBytes}
	for i := range s.skip {
		s.skip[i] = -1
	}
	if f.Resumed() {
		ids := f.ReplIDs()
		// Resuming: units up to a slot's marker are already applied there.
		for slot, p := range t.slotMarks {
			if p.ReplID == ids[0] || p.ReplID == ids[1] {
				s.skip[slot] = p.Offset
			}
		}
		s.skipKeyless = map[string]int64{}
		for k, p := range t.streamMarks {
			if p.ReplID == ids[0] || p.ReplID == ids[1] {
				s.skipKeyless[k] = p.Offset
			}
		}
	}
	t.route.Lock()
	t.sinks = append(t.sinks, s)
	t.route.Unlock()
	return s
}

// clusterSink routes one applier's commands by slot to the masters' writers.
type clusterSink struct {
	t        *clusterTarget
	f        Feed
	bs       []*batcher
	maxOps   int
	maxBytes int64
	held     bool // holding t.route shared, inside a unit
	// skip[slot]: while resuming after a restart, units ending at or before
	// this offset were applied in that slot already; skipKeyless likewise
	// for keyless commands, per stream marker.
	skip        [router.SlotCount]int64
	skipKeyless map[string]int64
}

func (s *clusterSink) enter() {
	if !s.held {
		s.t.route.RLock()
		s.held = true
	}
}

func (s *clusterSink) leave() {
	if s.held {
		s.held = false
		s.t.route.RUnlock()
	}
}

func (s *clusterSink) batcher(i int) *batcher {
	for len(s.bs) <= i {
		ws := s.t.Writers()
		b := newBatcher(ws[len(s.bs)], s.maxOps, s.maxBytes)
		b.stream = s.f.Stream()
		s.bs = append(s.bs, b)
	}
	return s.bs[i]
}

func (s *clusterSink) writerFor(slot int) (int, error) {
	i := s.t.owner.Load()[slot]
	if i < 0 {
		return 0, fmt.Errorf("target cluster: slot %d has no master", slot)
	}
	return int(i), nil
}

func (s *clusterSink) Add(ctx context.Context, db int, c *router.Command) error {
	s.enter()
	if db > 0 {
		return fmt.Errorf("a write to db %d cannot go to a cluster target (db 0 only): map it with db_map = {%d = 0} or filter it out", db, db)
	}
	parts, err := c.Parts()
	if err != nil {
		return fmt.Errorf("cannot apply %s to a cluster target: %w", c.Display(), err)
	}
	off := s.f.Offset()
	for _, p := range parts {
		if p.Slot == router.NoSlot {
			return s.addKeyless(c, off)
		}
		if s.f.Resumed() && off <= s.skip[p.Slot] {
			continue
		}
		i, err := s.writerFor(p.Slot)
		if err != nil {
			return err
		}
		b := s.batcher(i).cur
		b.AddSlot(p.Slot, p.Args...)
		if len(parts) == 1 {
			b.MarkFold(c)
		}
	}
	return nil
}

// AddRaw routes c by its parsed args: a command may split across slots.
func (s *clusterSink) AddRaw(ctx context.Context, db int, c *router.Command, raw []byte) error {
	return s.Add(ctx, db, c)
}

// addKeyless sends a command that touches no key where its table flags say:
// to every master (router.Broadcast: FLUSHALL, FUNCTION LOAD…) or, for a
// publish (router.PubSub), to one: the cluster bus spreads it. A command
// that names a db (SWAPDB, SELECT) has no place on a cluster, and neither
// has one ferry cannot tell should run once or on every master (a module's
// keyless command).
func (s *clusterSink) addKeyless(c *router.Command, off int64) error {
	switch {
	case c.Has(router.DBArg):
		return fmt.Errorf("%s cannot be applied to a cluster target (db 0 only)", c.Display())
	case !c.Has(router.Broadcast) && !c.Has(router.PubSub):
		return fmt.Errorf("cannot place %s on a cluster target: it has no key, and ferry does not know whether it belongs on one master or on all", c.Display())
	}
	job := s.t.cfg.Job
	ws := s.t.Writers()
	s.t.mu.Lock()
	homes := slices.Clone(s.t.homes)
	s.t.mu.Unlock()
	for i := range ws {
		if s.f.Resumed() {
			if done, ok := s.skipKeyless[streamMarker(job, homes[i], s.f.Stream())]; ok && off <= done {
				continue
			}
		}
		s.batcher(i).cur.AddSlot(-1, c.Args...)
		if c.Has(router.PubSub) {
			break
		}
	}
	return nil
}

func (s *clusterSink) AddRestore(ctx context.Context, db int, key []byte, encode func(dst []byte) ([]byte, error)) error {
	b, slot, err := s.restoreBatch(db, key)
	if err != nil {
		return err
	}
	return b.AddIdempotent(0, slot, encode)
}

func (s *clusterSink) AddRestoreSpliced(ctx context.Context, db int, key []byte, sp writer.Spliced) error {
	b, slot, err := s.restoreBatch(db, key)
	if err != nil {
		sp.Free()
		return err
	}
	b.AddIdempotentSpliced(0, slot, sp)
	return nil
}

// restoreBatch is the batch a snapshot key's value goes into, and its slot.
func (s *clusterSink) restoreBatch(db int, key []byte) (*writer.Batch, int, error) {
	s.enter()
	if db > 0 {
		return nil, 0, fmt.Errorf("the snapshot has keys in db %d, and a cluster target has db 0 only: map it with db_map = {%d = 0} or filter it out", db, db)
	}
	slot := router.Slot(key)
	i, err := s.writerFor(slot)
	if err != nil {
		return nil, 0, err
	}
	return s.batcher(i).cur, slot, nil
}

func (s *clusterSink) EndUnit(ctx context.Context, pos writer.Position) error {
	s.enter()
	for i := range s.t.writerCount() {
		if err := s.batcher(i).endUnit(ctx, pos); err != nil {
			s.leave()
			return err
		}
	}
	s.leave()
	if s.t.redirect.Load() {
		return s.t.reroute(ctx)
	}
	return nil
}

func (s *clusterSink) DropUnit() {
	for _, b := range s.bs {
		b.dropUnit()
	}
	s.leave()
}

func (s *clusterSink) Flush(ctx context.Context) error {
	s.t.route.RLock()
	defer s.t.route.RUnlock()
	return s.flushLocked(ctx)
}

func (s *clusterSink) flushLocked(ctx context.Context) error {
	for i := range s.t.writerCount() {
		if err := s.batcher(i).submit(ctx); err != nil {
			return err
		}
	}
	return nil
}

// reroute handles a topology change reported by MOVED, ASK or TRYAGAIN. With
// every applier paused at a unit boundary, everything routed so far is
// flushed and acknowledged (or sent back), the cluster's shape is read
// again, and what was sent back is routed again in its original order,
// ahead of anything new. Per slot the order of writes is therefore kept;
// between slots it never mattered.
func (t *clusterTarget) reroute(ctx context.Context) error {
	t.route.Lock()
	defer t.route.Unlock()
	log := t.cfg.Log
	for round := 0; t.redirect.Load(); round++ {
		t.redirect.Store(false)
		for _, s := range t.sinks {
			if err := s.flushLocked(ctx); err != nil {
				return err
			}
		}
		for _, w := range t.Writers() {
			if err := w.Drain(ctx); err != nil {
				return err
			}
		}
		var ops []writer.Op
		from := map[*writer.Writer][]writer.Op{}
		origin := map[uint64]int{}
		for wi, w := range t.Writers() {
			r := w.Redirected()
			from[w] = r
			for _, o := range r {
				origin[o.Seq] = wi
			}
			ops = append(ops, r...)
		}
		if len(ops) == 0 {
			return nil
		}
		old := t.topo
		if err := t.discover(ctx); err != nil {
			return err
		}
		moved := !old.Equal(t.topo)
		slices.SortStableFunc(ops, func(a, b writer.Op) int {
			switch {
			case a.Seq < b.Seq:
				return -1
			case a.Seq > b.Seq:
				return 1
			}
			return 0
		})
		if !moved {
			// Same shape: the slots are being migrated (ASK, TRYAGAIN).
			// ferry does not write through ASKING: its markers must move
			// with their slots, and a marker written on the importing node
			// would collide with the migrating one. It waits for the
			// migration to end instead.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(20*time.Millisecond*time.Duration(round+1), 500*time.Millisecond)):
			}
		}
		to := map[int][]writer.Op{}
		for _, o := range ops {
			i := origin[o.Seq] // a keyless command goes back where it came from
			if o.Slot >= 0 {
				i = int(t.owner.Load()[o.Slot])
				if i < 0 {
					return fmt.Errorf("target cluster: slot %d has no master", o.Slot)
				}
			}
			to[i] = append(to[i], o)
		}
		ws := t.Writers()
		for i, list := range to {
			ws[i].Inject(list)
		}
		for w, r := range from {
			w.DropRedirected(len(r))
		}
		if moved {
			log.Info().Int("commands", len(ops)).Str("topology", t.topo.String()).Msg("target cluster changed; re-routed commands")
		}
	}
	return nil
}
