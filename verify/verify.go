// Package verify compares a source Redis deployment with a target, key by
// key: existence, type, the full value (element by element, page by page for
// big keys; streams with their consumer groups, consumers and pending
// entries) and the TTL within a tolerance. Either side may be a standalone
// server (every db) or a cluster (every master, db 0). ferry's own keys
// (markers and probes under "__ferry:", see ferrys) are ignored on both
// sides; other keys under "__ferry:" are compared.
//
// The comparison streams: keys are scanned in batches, read through pipelines
// by a few workers, and throttled; memory holds a few batches and the
// differences found. Keys on the target that the source lacks are found by
// scanning the target and asking the source about each key (EXISTS).
//
// While a sync runs, a difference may only mean that a write has not arrived
// yet: keys that differ are compared again over a few rounds, and only the
// differences that survive the last round are reported.
package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/conf"
)

// Mode is how much is compared.
type Mode string

const (
	// ModeFull compares every key: existence, type, value, TTL.
	ModeFull Mode = "full"
	// ModeSample compares Sample random keys per db (and checks Sample random
	// target keys per db for extras) in full.
	ModeSample Mode = "sample"
	// ModeKeys compares existence, type and length (cardinality) of every
	// key; no values, no TTLs.
	ModeKeys Mode = "keys"
)

// Modes lists the modes, for messages.
var Modes = []Mode{ModeFull, ModeSample, ModeKeys}

// Defaults of Options.
const (
	DefaultRounds       = 3
	DefaultRoundDelay   = time.Second
	DefaultTTLTolerance = 2 * time.Second
	DefaultSample       = 1000
	DefaultWorkers      = 4
	DefaultBatch        = 100
	DefaultMaxDiffs     = 100_000
)

// Options configure a comparison.
type Options struct {
	// Source and Target are validated endpoints (conf.Job.Validate): Hosts,
	// credentials, TLS. sentinel:// addresses are resolved to the master.
	Source, Target conf.Endpoint
	// DBMap maps source dbs to target dbs as in conf.Job: a db not in the
	// map keeps its number. A cluster has db 0 only.
	DBMap map[int]int

	Mode   Mode // "" = full
	Sample int  // keys per db in ModeSample (0 = DefaultSample)

	// Rounds is the number of comparison rounds, the first included: keys
	// that differ are compared again before being reported (0 =
	// DefaultRounds; 1 = no re-check).
	Rounds int
	// RoundDelay is the pause before each re-check round (0 =
	// DefaultRoundDelay; negative = none).
	RoundDelay time.Duration
	// TTLTolerance is how far the remaining TTLs of a key may be apart (0 =
	// DefaultTTLTolerance; negative = they must be equal to the millisecond).
	TTLTolerance time.Duration

	// MaxOps limits the commands per second sent to each side (0 =
	// unlimited). A pipeline of n commands counts n.
	MaxOps int

	Workers  int // batches compared in parallel (0 = DefaultWorkers)
	Batch    int // keys per batch (0 = DefaultBatch)
	MaxDiffs int // differences listed and re-checked (0 = DefaultMaxDiffs); more are only counted

	// Progress is the interval of progress lines on Log (0 = none).
	Progress time.Duration
	Log      zerolog.Logger
	// OnRound, if set, is called after each round with the round number
	// (1-based) and the number of keys that differ after it.
	OnRound func(round, differing int)
}

// Kind is a kind of difference.
type Kind string

// Kinds of differences.
const (
	KindMissing Kind = "missing" // on the source, not on the target
	KindExtra   Kind = "extra"   // on the target, not on the source
	KindType    Kind = "type"    // different types
	KindValue   Kind = "value"   // different values (or lengths)
	KindTTL     Kind = "ttl"     // TTLs (of the key, or of a hash field) differ by more than the tolerance, or only one side has one
	// KindLostFieldTTL: hash fields with TTLs on a source whose target
	// cannot hold them (older than Redis 7.4): what on_unsupported = "drop"
	// gave up, told apart from a TTL that went wrong.
	KindLostFieldTTL Kind = "lost_field_ttl"
)

// Kinds lists the kinds in report order.
var Kinds = []Kind{KindMissing, KindExtra, KindType, KindValue, KindTTL, KindLostFieldTTL}

// Diff is one key that differs.
type Diff struct {
	// DB is the source db of the key. For an extra key it is the source db
	// that maps to TargetDB when there is exactly one, else TargetDB.
	DB       int
	TargetDB int
	Key      string
	Kind     Kind
	Detail   string // readable: `field "name": "a" != "b"`
}

// DBResult is the comparison of one db.
type DBResult struct {
	DB         int            // source db (see Diff.DB for extras)
	TargetDB   int            // target db it maps to
	Compared   int64          // source keys compared
	TargetKeys int64          // target keys checked for extras
	Diffs      map[Kind]int64 // differences by kind
}

// Result is the outcome of Run.
type Result struct {
	Mode       Mode
	Rounds     int   // comparison rounds run
	Compared   int64 // source keys compared
	TargetKeys int64 // target keys checked for extras
	// Diffs are the differences left after the last round, in (DB, Key)
	// order, at most MaxDiffs.
	Diffs []Diff
	// Unlisted counts differences found beyond MaxDiffs: counted, neither
	// listed nor re-checked.
	Unlisted int64
	Counts   map[Kind]int64 // differences by kind, listed and unlisted
	Healed   int            // differences of the first round gone by the last
	PerDB    []DBResult     // by DB, then TargetDB
	Elapsed  time.Duration
}

// Equal reports whether no difference was found.
func (r Result) Equal() bool { return len(r.Diffs) == 0 && r.Unlisted == 0 }

// Total is the number of differences.
func (r Result) Total() int64 { return int64(len(r.Diffs)) + r.Unlisted }

// Run compares the source with the target.
func Run(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	if err := o.fill(); err != nil {
		return Result{}, err
	}
	for _, s := range []struct {
		role string
		ep   conf.Endpoint
	}{{"source", o.Source}, {"target", o.Target}} {
		if s.ep.TLSOn() && s.ep.TLS.InsecureSkipVerify {
			o.Log.Warn().Str(s.role, s.ep.Redacted()).Msgf("verify: %s: insecure_skip_verify is on: the server's TLS certificate is not checked, anyone on the network path can pose as it and read the data and password", s.role)
		}
	}
	src, err := openSide(ctx, "source", o.Source, o.MaxOps, o.Workers+2)
	if err != nil {
		return Result{}, err
	}
	defer src.close()
	dst, err := openSide(ctx, "target", o.Target, o.MaxOps, o.Workers+2)
	if err != nil {
		return Result{}, err
	}
	defer dst.close()
	e := &engine{o: o, src: src, dst: dst, stats: map[[2]int]*DBResult{}}
	if err := e.plan(ctx); err != nil {
		return Result{}, err
	}
	o.Log.Info().Str("source", o.Source.Redacted()).Bool("source_cluster", src.cluster).
		Str("target", o.Target.Redacted()).Bool("target_cluster", dst.cluster).
		Ints("dbs", e.srcDBs).Str("mode", string(o.Mode)).Msg("verify: comparing")

	stopProgress := e.progress(ctx)
	defer stopProgress()

	set := newDiffSet(o.MaxDiffs)
	if err := e.runJobs(ctx, e.firstPass, set); err != nil {
		return Result{}, err
	}
	rounds := 1
	initial := set.len()
	e.round.Store(1)
	if o.OnRound != nil {
		o.OnRound(1, set.len())
	}
	for rounds < o.Rounds && set.len() > 0 {
		if o.RoundDelay > 0 {
			t := time.NewTimer(o.RoundDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return Result{}, ctx.Err()
			case <-t.C:
			}
		}
		pending := set.list()
		next := newDiffSet(o.MaxDiffs)
		next.overflow = set.overflow
		if err := e.runJobs(ctx, e.recheck(pending), next); err != nil {
			return Result{}, err
		}
		set = next
		rounds++
		e.round.Store(int32(rounds))
		o.Log.Debug().Int("round", rounds).Int("differing", set.len()).Msg("verify: re-check round done")
		if o.OnRound != nil {
			o.OnRound(rounds, set.len())
		}
	}
	r := e.result(set, rounds)
	r.Healed = max(0, initial-set.len())
	r.Elapsed = time.Since(start)
	return r, nil
}

func (o *Options) fill() error {
	switch o.Mode {
	case "":
		o.Mode = ModeFull
	case ModeFull, ModeSample, ModeKeys:
	default:
		return fmt.Errorf("verify: unknown mode %q (full, sample or keys)", o.Mode)
	}
	if o.Sample < 0 || o.Rounds < 0 || o.MaxOps < 0 || o.Workers < 0 || o.Batch < 0 || o.MaxDiffs < 0 {
		return errors.New("verify: negative option")
	}
	if o.Sample == 0 {
		o.Sample = DefaultSample
	}
	if o.Rounds == 0 {
		o.Rounds = DefaultRounds
	}
	switch {
	case o.RoundDelay == 0:
		o.RoundDelay = DefaultRoundDelay
	case o.RoundDelay < 0:
		o.RoundDelay = 0
	}
	switch {
	case o.TTLTolerance == 0:
		o.TTLTolerance = DefaultTTLTolerance
	case o.TTLTolerance < 0:
		o.TTLTolerance = 0
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.MaxDiffs == 0 {
		o.MaxDiffs = DefaultMaxDiffs
	}
	return nil
}

// engine is one comparison.
type engine struct {
	o        Options
	src, dst *side
	srcDBs   []int // source dbs with keys
	dstDBs   []int // target dbs with keys

	mu    sync.Mutex
	stats map[[2]int]*DBResult // by DB and TargetDB

	compared, targetKeys atomic.Int64
	found                atomic.Int64 // differences seen in the current round
	round                atomic.Int32
}

func (e *engine) mapDB(db int) int {
	if t, ok := e.o.DBMap[db]; ok {
		return t
	}
	return db
}

// preimage lists the source dbs (with keys) that map to target db t.
func (e *engine) preimage(t int) []int {
	var out []int
	for _, s := range e.srcDBs {
		if e.mapDB(s) == t {
			out = append(out, s)
		}
	}
	return out
}

// extraDB is the DB reported for an extra key of target db t.
func (e *engine) extraDB(t int) int {
	if p := e.preimage(t); len(p) == 1 {
		return p[0]
	}
	return t
}

func (e *engine) plan(ctx context.Context) error {
	var err error
	if e.srcDBs, err = e.src.dbsWithKeys(ctx); err != nil {
		return err
	}
	if e.dstDBs, err = e.dst.dbsWithKeys(ctx); err != nil {
		return err
	}
	for _, s := range e.srcDBs {
		if t := e.mapDB(s); e.dst.cluster && t != 0 {
			return fmt.Errorf("source db %d maps to target db %d, but the target is a cluster (db 0 only): map it with db_map", s, t)
		}
	}
	return nil
}

func (e *engine) dbStats(db, tdb int) *DBResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	st, ok := e.stats[[2]int{db, tdb}]
	if !ok {
		st = &DBResult{DB: db, TargetDB: tdb, Diffs: map[Kind]int64{}}
		e.stats[[2]int{db, tdb}] = st
	}
	return st
}

// job is a batch of keys to compare (keys of source db db) or to check for
// extras (keys of target db db).
type job struct {
	extras bool
	db     int
	keys   []string
	first  bool // first round: counts toward Compared / TargetKeys
}

func (e *engine) runJobs(ctx context.Context, produce func(ctx context.Context, emit func(job) error) error, set *diffSet) error {
	e.found.Store(0)
	g, gctx := errgroup.WithContext(ctx)
	ch := make(chan job, e.o.Workers)
	g.Go(func() error {
		defer close(ch)
		return produce(gctx, func(j job) error {
			select {
			case ch <- j:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	for i := 0; i < e.o.Workers; i++ {
		g.Go(func() error {
			for j := range ch {
				var diffs []Diff
				var err error
				if j.extras {
					diffs, err = e.checkExtras(gctx, j.db, j.keys)
				} else {
					diffs, err = e.compareKeys(gctx, j.db, j.keys)
				}
				if err != nil {
					return err
				}
				if j.first {
					n := int64(len(j.keys))
					if j.extras {
						e.targetKeys.Add(n)
						st := e.dbStats(e.extraDB(j.db), j.db)
						e.mu.Lock()
						st.TargetKeys += n
						e.mu.Unlock()
					} else {
						e.compared.Add(n)
						st := e.dbStats(j.db, e.mapDB(j.db))
						e.mu.Lock()
						st.Compared += n
						e.mu.Unlock()
					}
				}
				e.found.Add(int64(len(diffs)))
				for _, d := range diffs {
					set.add(d)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// firstPass produces the jobs of the first round: every source key (or a
// sample) to compare, then every target key (or a sample) to check for
// extras.
func (e *engine) firstPass(ctx context.Context, emit func(job) error) error {
	batches := func(extras bool, db int, keys []string) error {
		for i := 0; i < len(keys); i += e.o.Batch {
			if err := emit(job{extras: extras, db: db, keys: keys[i:min(len(keys), i+e.o.Batch)], first: true}); err != nil {
				return err
			}
		}
		return nil
	}
	walk := func(s *side, extras bool, dbs []int) error {
		for _, db := range dbs {
			if e.o.Mode == ModeSample {
				keys, all, err := s.sample(ctx, db, e.o.Sample)
				if err != nil {
					return err
				}
				if !all {
					if err := batches(extras, db, keys); err != nil {
						return err
					}
					continue
				}
			}
			err := s.scan(ctx, db, e.o.Batch, func(keys []string) error {
				return emit(job{extras: extras, db: db, keys: keys, first: true})
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(e.src, false, e.srcDBs); err != nil {
		return err
	}
	return walk(e.dst, true, e.dstDBs)
}

// recheck produces the jobs of a re-check round for the pending differences.
func (e *engine) recheck(pending []Diff) func(ctx context.Context, emit func(job) error) error {
	return func(ctx context.Context, emit func(job) error) error {
		type group struct {
			extras bool
			db     int
		}
		byGroup := map[group][]string{}
		var order []group
		for _, d := range pending {
			g := group{false, d.DB}
			if d.Kind == KindExtra {
				g = group{true, d.TargetDB}
			}
			if _, ok := byGroup[g]; !ok {
				order = append(order, g)
			}
			byGroup[g] = append(byGroup[g], d.Key)
		}
		for _, g := range order {
			keys := byGroup[g]
			for i := 0; i < len(keys); i += e.o.Batch {
				if err := emit(job{extras: g.extras, db: g.db, keys: keys[i:min(len(keys), i+e.o.Batch)]}); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// progress logs a progress line every o.Progress until the returned stop is called.
func (e *engine) progress(ctx context.Context) (stop func()) {
	if e.o.Progress <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.o.Progress)
		defer t.Stop()
		last, lastAt := int64(0), time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				n := e.compared.Load() + e.targetKeys.Load()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				e.o.Log.Info().
					Int32("round", e.round.Load()).
					Int64("source_keys", e.compared.Load()).
					Int64("target_keys", e.targetKeys.Load()).
					Int64("differences", e.found.Load()).
					Float64("keys_per_sec", float64(int64(rate*10))/10).
					Int64("ops_source", e.src.ops.Load()).
					Int64("ops_target", e.dst.ops.Load()).
					Msg("verify: progress")
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func (e *engine) result(set *diffSet, rounds int) Result {
	r := Result{
		Mode:       e.o.Mode,
		Rounds:     rounds,
		Compared:   e.compared.Load(),
		TargetKeys: e.targetKeys.Load(),
		Diffs:      set.list(),
		Counts:     map[Kind]int64{},
	}
	for _, d := range r.Diffs {
		r.Counts[d.Kind]++
		e.dbStats(d.DB, d.TargetDB).Diffs[d.Kind]++
	}
	for k, n := range set.overflow {
		r.Unlisted += n
		r.Counts[k.kind] += n
		e.dbStats(k.db, k.tdb).Diffs[k.kind] += n
	}
	for _, db := range e.srcDBs {
		e.dbStats(db, e.mapDB(db))
	}
	for _, st := range e.stats {
		r.PerDB = append(r.PerDB, *st)
	}
	sort.Slice(r.PerDB, func(i, j int) bool {
		a, b := r.PerDB[i], r.PerDB[j]
		return a.DB < b.DB || a.DB == b.DB && a.TargetDB < b.TargetDB
	})
	return r
}

// diffSet collects differences, one per key, up to max; more are counted.
type diffSet struct {
	mu       sync.Mutex
	max      int
	m        map[diffID]Diff
	overflow map[dbKind]int64
}

type diffID struct {
	db, tdb int
	key     string
}

type dbKind struct {
	db, tdb int
	kind    Kind
}

func newDiffSet(max int) *diffSet {
	return &diffSet{max: max, m: map[diffID]Diff{}, overflow: map[dbKind]int64{}}
}

func (s *diffSet) add(d Diff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := diffID{d.DB, d.TargetDB, d.Key}
	if _, ok := s.m[id]; ok || len(s.m) < s.max {
		s.m[id] = d
		return
	}
	s.overflow[dbKind{d.DB, d.TargetDB, d.Kind}]++
}

func (s *diffSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// list returns the differences in (DB, TargetDB, Key) order.
func (s *diffSet) list() []Diff {
	s.mu.Lock()
	out := make([]Diff, 0, len(s.m))
	for _, d := range s.m {
		out = append(out, d)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.DB != b.DB {
			return a.DB < b.DB
		}
		if a.TargetDB != b.TargetDB {
			return a.TargetDB < b.TargetDB
		}
		return a.Key < b.Key
	})
	return out
}
