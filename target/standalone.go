package target

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/writer"
)

// standaloneTarget is one Redis server with one writer, and one marker per
// source stream.
type standaloneTarget struct {
	cfg     *Config
	n       *Node
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

func openStandalone(ctx context.Context, c *Config, n *Node) (*standaloneTarget, error) {
	n.LeaseKey = LeaseKey(c.Job, -1)
	if c.Lease != nil {
		if err := c.Lease.Acquire(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := n.probe(ctx, writer.OwnPrefix+c.Job+":probe"); err != nil {
		return nil, err
	}
	t := &standaloneTarget{cfg: c, n: n, markers: map[string]writer.Position{}}
	p := n.Ctl.Pipeline()
	cmds := make([]*redis.StringCmd, MaxStreams)
	for i := range cmds {
		cmds[i] = p.Get(ctx, streamMarkerKey(c.Job, i))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("target %s: read markers: %w", n.Addr.Addr, err)
	}
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("target %s: read marker: %w", n.Addr.Addr, err)
		}
		pos, err := writer.ParsePosition(v)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", n.Addr.Addr, err)
		}
		t.markers[streamMarkerKey(c.Job, i)] = pos
	}
	t.w = writer.New(c.writerConfig(0, n, func(stream int) int64 { return LowWatermark(t.Writers(), stream) }, writer.Config{
		MarkerKey: writer.MarkerKey(c.Job),
		MarkerDB:  markerDB,
		Found:     t.markers,
	}))
	return t, nil
}

func (t *standaloneTarget) Writers() []*writer.Writer { return []*writer.Writer{t.w} }
func (t *standaloneTarget) Nodes() []*Node            { return []*Node{t.n} }
func (t *standaloneTarget) Close()                    { t.n.Close() }
func (t *standaloneTarget) Found() bool               { return len(t.markers) > 0 }
func (t *standaloneTarget) Cluster() bool             { return false }

func (t *standaloneTarget) MaxSeq() uint64 {
	var m uint64
	for _, p := range t.markers {
		m = max(m, p.Seq)
	}
	return m
}

// ResumeFor picks the most recent live marker of the shard's replication
// history (see resumable).
func (t *standaloneTarget) ResumeFor(i int, id, id2 string) (writer.Position, bool) {
	all := make([]writer.Position, 0, len(t.markers))
	for _, p := range t.markers {
		all = append(all, p)
	}
	return resumable(all, id, id2, func(a, b writer.Position) bool { return a.Seq > b.Seq })
}

func (t *standaloneTarget) NewSink(f Feed) Sink {
	c := t.cfg
	return SingleSink(t.w, f.Stream(), streamMarkerKey(c.Job, f.Stream()), c.BatchMaxOps, c.BatchMaxBytes)
}

// SingleSink is the sink of a standalone target: stream's commands in
// batches of at most maxOps commands and maxBytes bytes, dbs as they come,
// submitted to w, its position recorded in markerKey.
func SingleSink(w Submitter, stream int, markerKey string, maxOps int, maxBytes int64) Sink {
	b := newBatcher(w, maxOps, maxBytes)
	b.stream, b.markerKey = stream, markerKey
	return &single{b: b}
}

func (t *standaloneTarget) Start(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return t.w.Run(ctx) })
}

func (t *standaloneTarget) RemoveMarkers(ctx context.Context) error {
	keys := make([]string, 0, MaxStreams)
	for i := 0; i < MaxStreams; i++ {
		keys = append(keys, streamMarkerKey(t.cfg.Job, i))
	}
	return t.n.Ctl.Unlink(ctx, keys...).Err()
}

// single is the sink of a standalone target: one batcher, dbs as they come.
type single struct{ b *batcher }

func (s *single) Add(ctx context.Context, db int, c *router.Command) error {
	s.b.cur.Add(db, c.Args...)
	s.b.cur.MarkFold(c)
	return nil
}

func (s *single) AddRaw(ctx context.Context, db int, c *router.Command, raw []byte) error {
	s.b.cur.AddEncoded(db, -1, raw)
	s.b.cur.MarkFold(c)
	return nil
}

func (s *single) AddRestore(ctx context.Context, db int, key []byte, encode func(dst []byte) ([]byte, error)) error {
	return s.b.cur.AddIdempotent(db, -1, encode)
}

func (s *single) AddRestoreSpliced(ctx context.Context, db int, key []byte, sp writer.Spliced) error {
	s.b.cur.AddIdempotentSpliced(db, -1, sp)
	return nil
}

func (s *single) EndUnit(ctx context.Context, pos writer.Position) error {
	return s.b.endUnit(ctx, pos)
}
func (s *single) DropUnit()                       { s.b.dropUnit() }
func (s *single) Flush(ctx context.Context) error { return s.b.submit(ctx) }
