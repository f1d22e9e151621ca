package apply

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/writer"
)

// The reshard stress test runs a model of a resharding cluster source
// through the real Moves and Appliers, one goroutine per stream, and checks
// that the target ends as the source does.
//
// The source: 3 masters, a few slots (hash tags) of a few keys each, a load
// of INCR/SET/APPEND/RPUSH/DEL, and slot migrations as redis-cli does them
// (the importing master's stream gets a RESTORE-ASKING of each key, the
// migrating one's a DEL of the batch, after it; a command on a key the
// migrating master no longer holds is ASKed to the importing one). Slots
// move again and again: A→B, B→C, back to A, several at once.
//
// ferry: each stream is applied by its own goroutine; a controller driven by
// the seed decides, one step at a time, which stream takes its next command,
// which stream flushes its units, and which stream's submitted units the
// "target" applies next (in order per stream) — so every interleaving of
// stream lags and acknowledgement delays is reachable, and a seed replays
// exactly. WaitApplied blocks the calling stream until the controller has
// applied the awaited units.
//
// Run more seeds: go test -race -run TestReshardStress ./apply/ -reshard.seeds=5000
var (
	reshardSeeds = flag.Int("reshard.seeds", 400, "seeds TestReshardStress runs")
	reshardSeed  = flag.Uint64("reshard.seed", 0, "run TestReshardStress with this one seed (0: seeds 1..reshard.seeds)")
	// A time unit is a millisecond of receive time. By default the readers
	// are a few units apart, as goroutines that timestamp at socket read
	// are: Moves must not need them in step.
	reshardSkew = flag.Int("reshard.skew", 3, "each stream's receive times lag the source's by a random 0..N time units (a reader behind the others)")
	// Off by default: a key created on a master other than the one that
	// held it last (its slot moved while the key did not exist) leaves no
	// RESTORE to order the old master's late commands on it against the
	// new one's — a case Moves does not cover (see its doc).
	reshardRecreate = flag.Bool("reshard.recreate", false, "TestReshardStress also creates keys anew on another master than the one that held them last")
)

func TestReshardStress(t *testing.T) {
	if *reshardSeed != 0 {
		if err := runReshardSim(*reshardSeed, true); err != nil {
			t.Fatalf("seed %d: %v", *reshardSeed, err)
		}
		return
	}
	n := *reshardSeeds
	if testing.Short() {
		n = 50
	}
	failed := 0
	for seed := uint64(1); seed <= uint64(n); seed++ {
		if err := runReshardSim(seed, false); err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("seed %d (replay: go test -run TestReshardStress ./apply/ -reshard.seed=%d -v): %v", seed, seed, err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d seeds failed", failed, n)
	}
}

const simStreams = 3

// simVal is a key's value in the model: a string or a list.
type simVal struct {
	list bool
	s    string
	l    []string
}

func (v simVal) encode() string {
	if v.list {
		return "L:" + strings.Join(v.l, ",")
	}
	return "S:" + v.s
}

func decodeVal(p string) simVal {
	if rest, ok := strings.CutPrefix(p, "L:"); ok {
		return simVal{list: true, l: strings.Split(rest, ",")}
	}
	return simVal{s: strings.TrimPrefix(p, "S:")}
}

// simDB applies the commands of the model to a keyspace: the source's
// masters and the target run the same code.
type simDB map[string]simVal

// exec runs args; it reports whether the command changed something (Redis
// does not replicate a DEL that deleted nothing).
func (db simDB) exec(args []string) (bool, error) {
	switch args[0] {
	case "SET":
		db[args[1]] = simVal{s: args[2]}
	case "APPEND":
		v := db[args[1]]
		if v.list {
			return false, fmt.Errorf("APPEND on a list %s", args[1])
		}
		db[args[1]] = simVal{s: v.s + args[2]}
	case "INCR":
		v, ok := db[args[1]]
		n := 0
		if ok {
			var err error
			if n, err = strconv.Atoi(v.s); err != nil || v.list {
				return false, fmt.Errorf("INCR on %s = %q", args[1], v.encode())
			}
		}
		db[args[1]] = simVal{s: strconv.Itoa(n + 1)}
	case "RPUSH":
		v, ok := db[args[1]]
		if ok && !v.list {
			return false, fmt.Errorf("RPUSH on a string %s", args[1])
		}
		db[args[1]] = simVal{list: true, l: append(slices.Clone(v.l), args[2])}
	case "DEL":
		n := 0
		for _, k := range args[1:] {
			if _, ok := db[k]; ok {
				delete(db, k)
				n++
			}
		}
		return n > 0, nil
	case "RESTORE", "RESTORE-ASKING":
		replace := slices.Contains(args[4:], "REPLACE")
		if _, ok := db[args[1]]; ok && !replace {
			return false, fmt.Errorf("RESTORE %s without REPLACE: BUSYKEY", args[1])
		}
		db[args[1]] = decodeVal(args[3])
	default:
		return false, fmt.Errorf("unknown command %q", args)
	}
	return true, nil
}

type simCmd struct {
	args []string
	t    int64 // when the source ran it (global order): the receive time
}

// simSource generates a source's history.
type simSource struct {
	r     *rand.Rand
	nodes [simStreams]simDB
	tags  []string
	owner map[string]int
	// migrating: tag → importing master, while its slot moves.
	migrating map[string]int
	keys      map[string][]string // tag → its keys
	// holder is the master that held each key last (at first, its slot's).
	holder map[string]int
	hist   [simStreams][]simCmd
	t      int64
	moves  int
}

func (s *simSource) emit(node int, args ...string) error {
	changed, err := s.nodes[node].exec(args)
	if err != nil {
		return err
	}
	if changed {
		s.t++
		s.hist[node] = append(s.hist[node], simCmd{args: args, t: s.t})
	}
	return nil
}

// simRanges is the initial layout: three equal ranges, as redis-cli makes.
var simRanges = [simStreams][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}

func ownerOfSlot(slot int) int {
	for i, r := range simRanges {
		if slot >= r[0] && slot <= r[1] {
			return i
		}
	}
	panic("slot out of range")
}

func newSimSource(r *rand.Rand) *simSource {
	s := &simSource{r: r, owner: map[string]int{}, migrating: map[string]int{}, keys: map[string][]string{}, holder: map[string]int{}}
	for i := range s.nodes {
		s.nodes[i] = simDB{}
	}
	ntags := 2 + r.IntN(4)
	for i := 0; len(s.tags) < ntags; i++ {
		tag := "t" + strconv.Itoa(i)
		o := ownerOfSlot(router.Slot([]byte(tag)))
		// Spread the tags over the masters.
		if o != len(s.tags)%simStreams {
			continue
		}
		s.tags = append(s.tags, tag)
		s.owner[tag] = o
		nk := 1 + r.IntN(4)
		for k := range nk {
			kind := []string{"c", "s", "l"}[r.IntN(3)]
			key := fmt.Sprintf("{%s}%s%d", tag, kind, k)
			s.keys[tag] = append(s.keys[tag], key)
			s.holder[key] = o
		}
	}
	return s
}

// write runs one load command on a random key, where the cluster sends it.
func (s *simSource) write() error {
	tag := s.tags[s.r.IntN(len(s.tags))]
	ks := s.keys[tag]
	k := ks[s.r.IntN(len(ks))]
	node := s.owner[tag]
	if to, ok := s.migrating[tag]; ok {
		if _, here := s.nodes[node][k]; !here {
			node = to // ASK: the key is not (or no longer) on the migrating master
		}
	}
	if _, ok := s.nodes[node][k]; !ok && s.holder[k] != node && !*reshardRecreate {
		return nil
	}
	s.holder[k] = node
	v := strconv.FormatInt(s.t, 10)
	p := s.r.IntN(100)
	switch k[strings.IndexByte(k, '}')+1] {
	case 'c':
		switch {
		case p < 70:
			return s.emit(node, "INCR", k)
		case p < 85:
			return s.emit(node, "SET", k, v)
		default:
			return s.emit(node, "DEL", k)
		}
	case 's':
		switch {
		case p < 70:
			return s.emit(node, "APPEND", k, "x"+v)
		case p < 85:
			return s.emit(node, "SET", k, v)
		default:
			return s.emit(node, "DEL", k)
		}
	default:
		if p < 85 {
			return s.emit(node, "RPUSH", k, v)
		}
		return s.emit(node, "DEL", k)
	}
}

// migrate moves a batch of the keys its migrating master still holds (one
// MIGRATE ... KEYS), or ends the slot's migration when none is left.
func (s *simSource) migrate(tag string) error {
	from, to := s.owner[tag], s.migrating[tag]
	var left []string
	for _, k := range s.keys[tag] {
		if _, ok := s.nodes[from][k]; ok {
			left = append(left, k)
		}
	}
	if len(left) == 0 {
		s.owner[tag] = to
		delete(s.migrating, tag)
		return nil
	}
	s.r.Shuffle(len(left), func(i, j int) { left[i], left[j] = left[j], left[i] })
	batch := left[:1+s.r.IntN(len(left))]
	for _, k := range batch {
		if err := s.emit(to, "RESTORE-ASKING", k, "0", s.nodes[from][k].encode()); err != nil {
			return err
		}
		s.holder[k] = to
	}
	s.moves += len(batch)
	return s.emit(from, append([]string{"DEL"}, batch...)...)
}

func (s *simSource) run(steps int) error {
	for range steps {
		p := s.r.IntN(100)
		switch {
		case p < 6:
			// Start moving a slot (to any other master: on, or back).
			tag := s.tags[s.r.IntN(len(s.tags))]
			if _, ok := s.migrating[tag]; !ok {
				s.migrating[tag] = (s.owner[tag] + 1 + s.r.IntN(simStreams-1)) % simStreams
			}
		case p < 30 && len(s.migrating) > 0:
			tags := slices.Sorted(maps.Keys(s.migrating))
			if err := s.migrate(tags[s.r.IntN(len(tags))]); err != nil {
				return err
			}
		default:
			if err := s.write(); err != nil {
				return err
			}
		}
	}
	// Finish the migrations under way.
	for len(s.migrating) > 0 {
		for _, tag := range slices.Sorted(maps.Keys(s.migrating)) {
			if err := s.migrate(tag); err != nil {
				return err
			}
		}
	}
	return nil
}

// final is the source's data: every master's keys (a key lives on one).
func (s *simSource) final() (simDB, error) {
	out := simDB{}
	for _, n := range s.nodes {
		for k, v := range n {
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("model: key %s on two masters", k)
			}
			out[k] = v
		}
	}
	return out, nil
}

type simUnit struct {
	seq  uint64
	cmds [][]string
}

// simSink is one stream's target.Sink: ended units wait for a Flush, which
// hands them to the controller's queue for the stream.
type simSink struct {
	sim    *reshardSim
	stream int
	cur    [][]string
	ended  []simUnit
}

func (k *simSink) Add(_ context.Context, _ int, c *router.Command) error {
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = string(a)
	}
	k.cur = append(k.cur, args)
	return nil
}

func (k *simSink) AddRaw(ctx context.Context, db int, c *router.Command, _ []byte) error {
	return k.Add(ctx, db, c)
}

func (k *simSink) AddRestore(context.Context, int, []byte, func([]byte) ([]byte, error)) error {
	return fmt.Errorf("no snapshot in the simulation")
}

func (k *simSink) AddRestoreSpliced(_ context.Context, _ int, _ []byte, sp writer.Spliced) error {
	sp.Free()
	return fmt.Errorf("no snapshot in the simulation")
}

func (k *simSink) EndUnit(_ context.Context, pos writer.Position) error {
	k.ended = append(k.ended, simUnit{seq: pos.Seq, cmds: k.cur})
	k.cur = nil
	return nil
}

func (k *simSink) DropUnit() { k.cur = nil }

func (k *simSink) Flush(context.Context) error {
	k.sim.mu.Lock()
	k.sim.queue[k.stream] = append(k.sim.queue[k.stream], k.ended...)
	k.sim.mu.Unlock()
	k.ended = nil
	return nil
}

// A stream goroutine's report to the controller: it finished a step, or it
// blocks in WaitApplied until the target applied from's units up to seq.
type simReport struct {
	stream  int
	blocked bool
	from    int
	seq     uint64
	err     error
}

type reshardSim struct {
	mu      sync.Mutex
	queue   [simStreams][]simUnit // submitted units, not applied yet
	applied [simStreams]uint64    // seq of the last unit applied
	target  simDB
	// work takes a step to a stream's goroutine; resume wakes it from
	// WaitApplied; report is where the goroutines answer.
	work   [simStreams]chan func() error
	resume [simStreams]chan struct{}
	report chan simReport
}

func (sim *reshardSim) waitApplied(stream int) func(ctx context.Context, from int, seq uint64) error {
	return func(ctx context.Context, from int, seq uint64) error {
		select {
		case sim.report <- simReport{stream: stream, blocked: true, from: from, seq: seq}:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-sim.resume[stream]:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runReshardSim generates one source history from seed and applies it;
// it returns what differs.
func runReshardSim(seed uint64, verbose bool) error {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	src := newSimSource(r)
	if err := src.run(150 + r.IntN(300)); err != nil {
		return err
	}
	want, err := src.final()
	if err != nil {
		return err
	}

	slots := make([][][2]int, simStreams)
	for i, rg := range simRanges {
		slots[i] = [][2]int{rg}
	}
	moves := NewMoves(slots, nil)
	sim := &reshardSim{target: simDB{}, report: make(chan simReport)}
	var seq atomic.Uint64
	apps := make([]*Applier, simStreams)
	sinks := make([]*simSink, simStreams)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before the Wait: a stream blocked for good gives up
	for i := range simStreams {
		apps[i] = New(Config{Stream: i, Log: zerolog.Nop(), Job: "sim", Moves: moves, Table: router.Builtin(),
			WaitApplied: sim.waitApplied(i), Seq: &seq, Restore: conf.RestoreAlways, Fenced: true, MaxBulk: 1 << 30})
		sinks[i] = &simSink{sim: sim, stream: i}
		apps[i].SetSink(sinks[i])
		sim.work[i] = make(chan func() error)
		sim.resume[i] = make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case f := <-sim.work[i]:
					err := f()
					select {
					case sim.report <- simReport{stream: i, err: err}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}

	base := time.Unix(1_700_000_000, 0)
	var skew [simStreams]int
	for i := range skew {
		if *reshardSkew > 0 {
			skew[i] = r.IntN(*reshardSkew + 1)
		}
	}
	next := [simStreams]int{}
	blocked := [simStreams]*simReport{}
	var trace []string
	logf := func(format string, args ...any) {
		trace = append(trace, fmt.Sprintf(format, args...))
	}
	// run gives a step to stream i and waits until it is done or blocks.
	run := func(i int, f func() error) error {
		sim.work[i] <- f
		rep := <-sim.report
		if rep.stream != i {
			return fmt.Errorf("stream %d answered for stream %d", rep.stream, i)
		}
		if rep.err != nil {
			return rep.err
		}
		if rep.blocked {
			blocked[i] = &rep
			logf("  stream %d waits for stream %d's units to %d", i, rep.from, rep.seq)
		}
		return nil
	}
	step := func(i int) func() error {
		c := src.hist[i][next[i]]
		next[i]++
		end := int64(next[i])
		return func() error {
			args := make([][]byte, len(c.args))
			for j, a := range c.args {
				args[j] = []byte(a)
			}
			recv := base.Add(time.Duration(c.t+int64(skew[i])) * time.Millisecond)
			if err := apps[i].Command(ctx, args, nil, end, recv); err != nil {
				return err
			}
			moves.Applied(i, recv)
			return nil
		}
	}
	// Lag: each stream and the target's acknowledgement of it go at their
	// own pace, changing now and then.
	weights := func() [3 * simStreams]int {
		var w [3 * simStreams]int
		for j := range w {
			w[j] = 1 + r.IntN(10)
		}
		return w
	}
	w := weights()
	for {
		if r.IntN(50) == 0 {
			w = weights()
		}
		type action struct {
			kind string
			i    int
		}
		var acts []action
		var ws []int
		sim.mu.Lock()
		for i := range simStreams {
			if len(sim.queue[i]) > 0 {
				acts, ws = append(acts, action{"apply", i}), append(ws, w[2*simStreams+i])
			}
			if b := blocked[i]; b != nil {
				if sim.applied[b.from] >= b.seq {
					acts, ws = append(acts, action{"resume", i}), append(ws, 100)
				}
				continue
			}
			if next[i] < len(src.hist[i]) {
				acts, ws = append(acts, action{"step", i}), append(ws, w[i])
			}
			if len(sinks[i].ended) > 0 {
				// The stream submits what it holds: a full batch, its
				// idle flush, or another stream's WaitFlushed.
				f := w[simStreams+i]
				if next[i] == len(src.hist[i]) {
					f = 100
				}
				acts, ws = append(acts, action{"flush", i}), append(ws, f)
			}
		}
		sim.mu.Unlock()
		if len(acts) == 0 {
			break
		}
		total := 0
		for _, x := range ws {
			total += x
		}
		pick := r.IntN(total)
		var a action
		for j, x := range ws {
			if pick < x {
				a = acts[j]
				break
			}
			pick -= x
		}
		switch a.kind {
		case "step":
			logf("stream %d: %q", a.i, src.hist[a.i][next[a.i]].args)
			if err := run(a.i, step(a.i)); err != nil {
				return err
			}
			if next[a.i] == len(src.hist[a.i]) && blocked[a.i] == nil {
				moves.Applied(a.i, base.Add(time.Hour)) // idle: all received is applied
			}
		case "flush":
			if err := run(a.i, func() error { return apps[a.i].Flush(ctx) }); err != nil {
				return err
			}
		case "resume":
			blocked[a.i] = nil
			logf("  stream %d resumes", a.i)
			sim.resume[a.i] <- struct{}{}
			rep := <-sim.report
			if rep.err != nil {
				return rep.err
			}
			if rep.blocked {
				blocked[a.i] = &rep
				logf("  stream %d waits for stream %d's units to %d", a.i, rep.from, rep.seq)
			}
			if next[a.i] == len(src.hist[a.i]) && blocked[a.i] == nil {
				moves.Applied(a.i, base.Add(time.Hour))
			}
		case "apply":
			sim.mu.Lock()
			u := sim.queue[a.i][0]
			sim.queue[a.i] = sim.queue[a.i][1:]
			for _, c := range u.cmds {
				if _, err := sim.target.exec(c); err != nil {
					sim.mu.Unlock()
					return fmt.Errorf("target: %v", err)
				}
				logf("  target applies stream %d's %q", a.i, c)
			}
			sim.applied[a.i] = u.seq
			sim.mu.Unlock()
		}
	}
	var diffs []string
	for i := range simStreams {
		if blocked[i] != nil {
			diffs = append(diffs, fmt.Sprintf("deadlock: stream %d waits for stream %d's units to %d (applied to %d)", i, blocked[i].from, blocked[i].seq, sim.applied[blocked[i].from]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got, ok := sim.target[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing on the target, source %s", k, want[k].encode()))
		} else if got.encode() != want[k].encode() {
			diffs = append(diffs, fmt.Sprintf("%s: target %s, source %s", k, got.encode(), want[k].encode()))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(sim.target)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: on the target only: %s", k, sim.target[k].encode()))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d keys moved; the target differs from the source:\n  %s", src.moves, strings.Join(diffs, "\n  "))
	if verbose {
		var hist []string
		for i, h := range src.hist {
			for _, c := range h {
				hist = append(hist, fmt.Sprintf("t=%d stream %d: %q", c.t, i, c.args))
			}
		}
		slices.SortFunc(hist, func(a, b string) int {
			ta, _ := strconv.Atoi(a[2:strings.IndexByte(a, ' ')])
			tb, _ := strconv.Atoi(b[2:strings.IndexByte(b, ' ')])
			return ta - tb
		})
		msg += fmt.Sprintf("\nreceive skew of the streams: %v", skew)
		msg += "\nsource history:\n  " + strings.Join(hist, "\n  ") + "\nferry:\n  " + strings.Join(trace, "\n  ")
	}
	return fmt.Errorf("%s", msg)
}
