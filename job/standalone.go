package job

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"ferry/writer"
)

// target is the deployment ferry writes into: one standalone server, or the
// masters of a cluster.
type target interface {
	// writers are the target's writers, one per master.
	writers() []*writer.Writer
	// markers says whether ferry's markers of this job were found, and the
	// position a restarted job can resume the source from (ok=false: a full
	// resync is needed).
	markers() (found bool, resume writer.Position, ok bool)
	// maxSeq is the highest unit number found in the markers.
	maxSeq() uint64
	// nodes are the masters' control connections.
	nodes() []*node
	// newSink returns where the applier's commands go.
	newSink(app *applier) sink
	// start launches the writers (and anything that watches them) in g.
	start(ctx context.Context, g *errgroup.Group)
	// removeMarkers deletes the job's markers (the run is complete).
	removeMarkers(ctx context.Context) error
	close()
}

// standaloneTarget is one Redis server with one writer.
type standaloneTarget struct {
	n         *node
	w         *writer.Writer
	markerKey string
	pos       writer.Position
	found     bool
}

const markerDB = 0

func (j *job) openStandalone(ctx context.Context, n *node) (*standaloneTarget, error) {
	c := j.c
	if err := n.probe(ctx, ownPrefix+c.Name+":probe"); err != nil {
		return nil, err
	}
	t := &standaloneTarget{n: n, markerKey: writer.MarkerKey(c.Name)}
	var err error
	if t.pos, t.found, err = n.readMarker(ctx, t.markerKey, markerDB); err != nil {
		return nil, err
	}
	t.w = writer.New(j.writerConfig(0, n, writer.Config{
		MarkerKey:  t.markerKey,
		MarkerDB:   markerDB,
		Start:      t.pos,
		StartFound: t.found,
	}))
	return t, nil
}

// writerConfig fills in what every writer of the job shares.
func (j *job) writerConfig(i int, n *node, cfg writer.Config) writer.Config {
	c := j.c
	cfg.Name = fmt.Sprintf("ferry-writer-%d", i)
	cfg.Dial = n.addr
	cfg.Fence = c.Fence != "off"
	cfg.MaxInflight = c.MaxInflightBytes
	cfg.IOTimeout = j.o.IOTimeout
	cfg.KeepaliveFallback = c.KeepaliveInterval
	cfg.MaxConnAge = c.MaxConnAge
	cfg.OnError = errorPolicy(c.OnError)
	cfg.Log = j.log
	cfg.Throttle = j.o.Throttle
	cfg.Low = j.appliedOffset
	return cfg
}

func (t *standaloneTarget) writers() []*writer.Writer { return []*writer.Writer{t.w} }
func (t *standaloneTarget) nodes() []*node            { return []*node{t.n} }
func (t *standaloneTarget) maxSeq() uint64            { return t.pos.Seq }
func (t *standaloneTarget) close()                    { t.n.close() }

func (t *standaloneTarget) markers() (bool, writer.Position, bool) {
	ok := t.found && t.pos.State == writer.StateLive && t.pos.ReplID != ""
	return t.found, t.pos, ok
}

func (t *standaloneTarget) newSink(app *applier) sink {
	c := app.job.c
	return &single{b: newBatcher(t.w, c.BatchMaxOps, c.BatchMaxBytes)}
}

func (t *standaloneTarget) start(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error { return t.w.Run(ctx) })
}

func (t *standaloneTarget) removeMarkers(ctx context.Context) error {
	return t.n.deleteMarker(ctx, t.markerKey, markerDB)
}

// single is the sink of a standalone target: one batcher, dbs as they come.
type single struct{ b *batcher }

func (s *single) add(ctx context.Context, db int, args [][]byte) error {
	s.b.cur.Add(db, args...)
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
