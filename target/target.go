// Package target is the deployment ferry writes into: one standalone
// server, or the masters of a cluster. It owns the writers (one per master),
// the control connections beside them, the fence markers a restart resumes
// from, and — on a cluster — routing by slot, re-routing after MOVED/ASK and
// following a master's failover.
//
// The job opens a Target with Open, asks it where each source stream
// resumes (ResumeFor), gives each applier a Sink (NewSink) and runs the
// writers with Start. A Sink belongs to one applier's goroutine; the Target's
// methods may be called from any goroutine. A Target knows nothing of the
// job: what it needs (names, settings, the lease) comes in its Config.
package target

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/writer"
)

// Config is what a target needs to know of the job.
type Config struct {
	// Job names the markers, the probe and the lease keys.
	Job string
	// Seeds are the addresses to start from (the first one tells a cluster
	// from a server).
	Seeds []string
	// Dial gives the connection options for a node's address.
	Dial func(addr string) (dial.Options, error)
	// BatchMaxOps and BatchMaxBytes cut an applier's commands into batches.
	BatchMaxOps   int
	BatchMaxBytes int64
	// Writer holds the settings every writer shares; the target fills in
	// the name, the address, the markers and OnConnect.
	Writer writer.Config
	Log    zerolog.Logger
	// Lease takes the job's lease on a master before anything is written
	// there, and checks it on every writer connection.
	Lease Leaser
}

// Leaser is the job's hold on the target's masters (see package lease).
type Leaser interface {
	// Acquire takes the lease n.LeaseKey on node n.
	Acquire(ctx context.Context, n *Node) error
	// OnConnect is the writer hook that lets the connection of the writer
	// named name write only while the job holds the lease key.
	OnConnect(key, name string) func(c *resp.Conn) error
}

// Target is the deployment ferry writes into.
type Target interface {
	// Writers are the target's writers, one per master.
	Writers() []*writer.Writer
	// Found says whether markers of this job are on the target.
	Found() bool
	// ResumeFor is where stream i, whose source node continues the
	// replication histories id and id2, can resume (ok=false: it cannot,
	// a full resync of that shard follows).
	ResumeFor(i int, id, id2 string) (writer.Position, bool)
	// MaxSeq is the highest unit number found in the markers.
	MaxSeq() uint64
	// Nodes are the masters' control connections.
	Nodes() []*Node
	// Cluster says whether the target is a Redis Cluster.
	Cluster() bool
	// NewSink returns where the commands of the applier f go.
	NewSink(f Feed) Sink
	// Start launches the writers (and anything that watches them) in g.
	Start(ctx context.Context, g *errgroup.Group)
	// RemoveMarkers deletes the job's markers (the run is complete).
	RemoveMarkers(ctx context.Context) error
	Close()
}

// Feed is what a sink reads of the applier that feeds it, at the command
// at hand.
type Feed interface {
	// Stream is the source stream the applier applies.
	Stream() int
	// Offset is the end of the stream command at hand.
	Offset() int64
	// Resumed says whether the stream resumed from the target's markers
	// (and has not resynced since): units a marker holds are skipped.
	Resumed() bool
	// ReplIDs are the replication histories the stream continues.
	ReplIDs() [2]string
}

// Sink takes one applier's commands, unit by unit. It is used by that
// applier's goroutine only.
type Sink interface {
	// Add sends one parsed command to run in db (-1: any db).
	Add(ctx context.Context, db int, c *router.Command) error
	// AddRaw is Add for a command that raw encodes exactly as
	// resp.AppendCommand encodes c.Args: a sink may send raw as it is.
	AddRaw(ctx context.Context, db int, c *router.Command, raw []byte) error
	// AddRestore adds the command encode appends, a snapshot key's whole
	// value: RESTORE … REPLACE ABSTTL, or a SET. It may run twice (see
	// writer.Batch.AddIdempotent).
	AddRestore(ctx context.Context, db int, key []byte, encode func(dst []byte) ([]byte, error)) error
	// AddRestoreSpliced is AddRestore for a RESTORE whose payload is sent
	// from where it lies (writer.Spliced). The sink owns sp from the call
	// on: it frees sp when it returns an error.
	AddRestoreSpliced(ctx context.Context, db int, key []byte, sp writer.Spliced) error
	// EndUnit ends a unit: what was added since the last one brings the
	// target to pos.
	EndUnit(ctx context.Context, pos writer.Position) error
	// DropUnit discards what was added since the last unit ended.
	DropUnit()
	// Flush submits what is batched.
	Flush(ctx context.Context) error
}

// MaxStreams bounds the source shards of one job (and the markers a restart
// looks for).
const MaxStreams = 64

// Open connects to the target and tells a cluster from a server.
func Open(ctx context.Context, cfg Config) (Target, error) {
	if len(cfg.Seeds) == 0 {
		return nil, errors.New("no target address")
	}
	o, err := cfg.Dial(cfg.Seeds[0])
	if err != nil {
		return nil, err
	}
	n, err := OpenNode(ctx, o)
	if err != nil {
		return nil, err
	}
	cl, err := ctl.IsCluster(ctx, n.Ctl)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("target %w", ctl.Describe(o.Addr, err))
	}
	if !cl {
		t, err := openStandalone(ctx, &cfg, n)
		if err != nil {
			n.Close()
			return nil, err
		}
		return t, nil
	}
	n.Close()
	return openCluster(ctx, &cfg)
}

// writerConfig is writer i's configuration: the shared settings, its node,
// and own's target-specific fields. low is the target's low watermark.
func (c *Config) writerConfig(i int, n *Node, low func(stream int) int64, own writer.Config) writer.Config {
	cfg := c.Writer
	cfg.Name = fmt.Sprintf("ferry-writer-%d", i)
	cfg.Dial = n.Addr
	cfg.MaxQueued = max(own.MaxQueued, cfg.MaxQueued, 8<<20, 2*c.BatchMaxBytes)
	cfg.MarkerKey, cfg.MarkerDB, cfg.Found = own.MarkerKey, own.MarkerDB, own.Found
	cfg.Slotted, cfg.SlotMarker, cfg.StreamMarker, cfg.OnRedirect, cfg.OnLink = own.Slotted, own.SlotMarker, own.StreamMarker, own.OnRedirect, own.OnLink
	cfg.OnMarkerMoved = own.OnMarkerMoved
	cfg.Low = low
	if c.Lease != nil {
		cfg.OnConnect = c.Lease.OnConnect(n.LeaseKey, cfg.Name)
	}
	return cfg
}

// LowWatermark is stream's global low watermark over the writers ws: every
// unit of the stream up to it is applied on every master (0 while a writer
// holds no live position of the stream). Each marker records it, so that a
// restart resumes a cluster target from the highest one (see
// clusterTarget.ResumeFor); the writers ask for it once per flight.
func LowWatermark(ws []*writer.Writer, stream int) int64 {
	off, _ := low(ws, stream, false)
	return off
}

// LowWatermarkOrChange is LowWatermark and a channel closed when it may
// have grown: the change notice of the writer holding it back (nil when ws
// is empty). A waiter reads again once it closes.
func LowWatermarkOrChange(ws []*writer.Writer, stream int) (int64, <-chan struct{}) {
	return low(ws, stream, true)
}

// low computes both; the channels only when asked for, since taking one
// makes the writer announce its next change (not on the flight path).
func low(ws []*writer.Writer, stream int, notice bool) (int64, <-chan struct{}) {
	off := int64(-1)
	var behind <-chan struct{}
	for _, w := range ws {
		var changed <-chan struct{}
		if notice {
			changed = w.Changed() // before the read: a later ack closes it
		}
		p, ok := w.Applied(stream)
		if !ok || p.State != writer.StateLive {
			return 0, changed
		}
		if off < 0 || p.Offset < off {
			off, behind = p.Offset, changed
		}
	}
	return max(off, 0), behind
}

// LeaseKey is the job's lease on a standalone target (home < 0; in the
// markers' db) or on the cluster master whose home slot is home: in that
// slot, so that it lives on the master it guards.
func LeaseKey(job string, home int) string {
	if home < 0 {
		return writer.OwnPrefix + job + ":lease"
	}
	return writer.OwnPrefix + "{" + router.TagForSlot(home) + "}:" + job + ":lease"
}

// HomeMovedError says that a cluster master no longer serves the slot its
// lease (and its writer's stream markers) are tagged to: the target was
// resharded. No operation on the key can succeed there again, so the job
// starts a new attempt, whose target gives each master a home among the
// slots it serves now and resumes from the markers.
type HomeMovedError struct {
	Addr string // the master
	Key  string // the key whose slot moved
	Err  error  // the MOVED reply
}

func (e *HomeMovedError) Error() string {
	return fmt.Sprintf("target %s no longer serves the slot of %s (the cluster was resharded): %v", e.Addr, e.Key, e.Err)
}

func (e *HomeMovedError) Unwrap() error { return e.Err }
