package job

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/writer"
)

// target is the deployment ferry writes into: one standalone server, or the
// masters of a cluster.
type target interface {
	// writers are the target's writers, one per master.
	writers() []*writer.Writer
	// found says whether markers of this job are on the target.
	found() bool
	// resumeFor is where stream i, whose source node continues the
	// replication histories id and id2, can resume (ok=false: it cannot,
	// a full resync of that shard follows).
	resumeFor(i int, id, id2 string) (writer.Position, bool)
	// maxSeq is the highest unit number found in the markers.
	maxSeq() uint64
	// nodes are the masters' control connections.
	nodes() []*node
	// newSink returns where an applier's commands go.
	newSink(app *applier) sink
	// start launches the writers (and anything that watches them) in g.
	start(ctx context.Context, g *errgroup.Group)
	// removeMarkers deletes the job's markers (the run is complete).
	removeMarkers(ctx context.Context) error
	close()
}

// maxStreams bounds the source shards of one job (and the markers a restart
// looks for).
const maxStreams = 64

// standaloneTarget is one Redis server with one writer, and one marker per
// source stream.
type standaloneTarget struct {
	j       *job
	n       *node
	w       *writer.Writer
	markers map[string]writer.Position // found at start
}

const markerDB = 0

// streamMarkerKey is the marker of stream i on a standalone target.
func streamMarkerKey(job string, i int) string {
	if i == 0 {
		return writer.MarkerKey(job)
	}
	return fmt.Sprintf("%s:%d", writer.MarkerKey(job), i)
}

func (j *job) openStandalone(ctx context.Context, n *node) (*standaloneTarget, error) {
	c := j.c
	n.leaseKey = leaseKey(c.Name, -1)
	if err := j.acquireLease(ctx, n); err != nil {
		return nil, err
	}
	if err := n.probe(ctx, ownPrefix+c.Name+":probe"); err != nil {
		return nil, err
	}
	t := &standaloneTarget{j: j, n: n, markers: map[string]writer.Position{}}
	p := n.ctl.Pipeline()
	cmds := make([]*redis.StringCmd, maxStreams)
	for i := range cmds {
		cmds[i] = p.Get(ctx, streamMarkerKey(c.Name, i))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("target %s: read markers: %w", n.addr.Addr, err)
	}
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("target %s: read marker: %w", n.addr.Addr, err)
		}
		pos, err := writer.ParsePosition(v)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", n.addr.Addr, err)
		}
		t.markers[streamMarkerKey(c.Name, i)] = pos
	}
	t.w = writer.New(j.writerConfig(0, n, writer.Config{
		MarkerKey: writer.MarkerKey(c.Name),
		MarkerDB:  markerDB,
		Found:     t.markers,
	}))
	return t, nil
}

// writerConfig fills in what every writer of the job shares.
func (j *job) writerConfig(i int, n *node, cfg writer.Config) writer.Config {
	c := j.c
	cfg.Name = fmt.Sprintf("ferry-writer-%d", i)
	cfg.Dial = n.addr
	cfg.Fence = c.Fence != conf.FenceOff
	cfg.MaxInflight = c.MaxInflightBytes
	cfg.MaxQueued = max(cfg.MaxQueued, 8<<20, 2*c.BatchMaxBytes)
	cfg.IOTimeout = j.o.ioTimeout
	cfg.KeepaliveFallback = c.KeepaliveInterval
	cfg.MaxConnAge = c.MaxConnAge
	cfg.RetryTimeout = j.retryTimeout()
	cfg.OnError = errorPolicy(c.OnError)
	cfg.Log = j.log
	cfg.Throttle = j.throttle
	cfg.Low = j.low
	cfg.OnConnect = j.registerLease(n.leaseKey, cfg.Name)
	return cfg
}

// retryTimeout is how long a writer retries an unreachable target: a sync
// of a live source keeps trying (and reports itself unready); a job that
// is meant to end gives up after retry_timeout.
func (j *job) retryTimeout() time.Duration {
	if !j.o.Migrate && j.c.RDB == "" {
		return 0
	}
	return j.c.RetryTimeout
}

// low is stream i's global low watermark: every unit of the stream up to it
// is applied on every master.
func (j *job) low(i int) int64 {
	for _, s := range j.parts() {
		if s.i == i {
			return s.applied()
		}
	}
	return -1
}

func (t *standaloneTarget) writers() []*writer.Writer { return []*writer.Writer{t.w} }
func (t *standaloneTarget) nodes() []*node            { return []*node{t.n} }
func (t *standaloneTarget) close()                    { t.n.close() }
func (t *standaloneTarget) found() bool               { return len(t.markers) > 0 }

func (t *standaloneTarget) maxSeq() uint64 {
	var m uint64
	for _, p := range t.markers {
		m = max(m, p.Seq)
	}
	return m
}

// resumeFor picks the most recent live marker of the shard's replication
// history (see resumable).
func (t *standaloneTarget) resumeFor(i int, id, id2 string) (writer.Position, bool) {
	all := make([]writer.Position, 0, len(t.markers))
	for _, p := range t.markers {
		all = append(all, p)
	}
	return resumable(all, id, id2, func(a, b writer.Position) bool { return a.Seq > b.Seq })
}

func (t *standaloneTarget) newSink(app *applier) sink {
	c := t.j.c
	b := newBatcher(t.w, c.BatchMaxOps, c.BatchMaxBytes)
	b.stream, b.markerKey = app.stream, streamMarkerKey(c.Name, app.stream)
	return &single{b: b}
}

func (t *standaloneTarget) start(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return t.w.Run(ctx) })
}

func (t *standaloneTarget) removeMarkers(ctx context.Context) error {
	keys := make([]string, 0, maxStreams)
	for i := 0; i < maxStreams; i++ {
		keys = append(keys, streamMarkerKey(t.j.c.Name, i))
	}
	return t.n.ctl.Unlink(ctx, keys...).Err()
}

// single is the sink of a standalone target: one batcher, dbs as they come.
type single struct{ b *batcher }

func (s *single) add(ctx context.Context, db int, c *router.Command) error {
	s.b.cur.Add(db, c.Args...)
	return nil
}

func (s *single) addRaw(ctx context.Context, db int, c *router.Command, raw []byte) error {
	s.b.cur.AddEncoded(db, -1, raw)
	return nil
}

func (s *single) addRestore(ctx context.Context, db int, key []byte, encode func(dst []byte) ([]byte, error)) error {
	return s.b.cur.AddWith(db, -1, encode)
}

func (s *single) endUnit(ctx context.Context, pos writer.Position) error {
	return s.b.endUnit(ctx, pos)
}
func (s *single) dropUnit()                       { s.b.dropUnit() }
func (s *single) flush(ctx context.Context) error { return s.b.submit(ctx) }
