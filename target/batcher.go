package target

import (
	"context"
	"errors"
	"time"

	"github.com/ferry-dev/ferry/writer"
)

// batcher cuts one writer's commands into batches. A batch ends only at a
// unit boundary — after a whole source command, a whole source transaction,
// or one command of a rewritten key — so that a fenced batch never applies a
// source transaction in part.
type batcher struct {
	w         Submitter
	cur       *writer.Batch
	maxOps    int
	maxBytes  int
	stream    int    // the source stream the batches belong to
	markerKey string // standalone: where the stream's position lives

	unitStart  int             // cur.Len() when the current unit began
	pos        writer.Position // position at the last unit boundary
	dirty      bool            // pos advanced since the last submitted batch
	lastSubmit time.Time
	units      int // units ended since the clock was last read
}

// Submitter takes a batcher's batches: a *writer.Writer.
type Submitter interface {
	Submit(ctx context.Context, b *writer.Batch) error
}

func newBatcher(w Submitter, maxOps int, maxBytes int64) *batcher {
	return &batcher{w: w, cur: writer.NewBatch(), maxOps: maxOps, maxBytes: int(maxBytes)}
}

// positionEvery bounds how long a writer's recorded position may trail the
// stream when its batches do not fill up (a writer that gets few commands on
// a busy cluster): the global low watermark, the ACK to the source and
// migrate's caught-up check all wait for it.
const positionEvery = 100 * time.Millisecond

// clockEvery is how many units may end between two readings of the clock
// for positionEvery: reading it per unit is a measurable share of the apply
// path. A stream that goes quiet is flushed by the consumer's idle flush, so
// the position never waits for more units.
const clockEvery = 16

// endUnit records that everything added so far forms complete units that
// bring the target to pos (pos.Seq numbers the unit), and submits the batch
// if it is full or the position has not been submitted for a while.
func (b *batcher) endUnit(ctx context.Context, pos writer.Position) error {
	b.cur.EndUnit(pos)
	b.pos = pos
	b.dirty = true
	b.unitStart = b.cur.Len()
	if b.cur.Len() >= b.maxOps || b.cur.Size() >= b.maxBytes {
		return b.submit(ctx)
	}
	if b.units++; b.units >= clockEvery {
		b.units = 0
		if time.Since(b.lastSubmit) >= positionEvery {
			return b.submit(ctx)
		}
	}
	return nil
}

// dropUnit discards the commands of an unfinished unit.
func (b *batcher) dropUnit() { b.cur.Truncate(b.unitStart) }

var errInsideUnit = errors.New("internal error: batch cut inside a unit")

// submit hands the current batch to the writer, even an empty one when only
// the position moved (a PING, a skipped command): the marker then records it.
func (b *batcher) submit(ctx context.Context) error {
	if b.cur.Len() > b.unitStart {
		return errInsideUnit
	}
	if b.cur.Len() == 0 && !b.dirty {
		return nil
	}
	batch := b.cur
	batch.Pos = b.pos
	batch.Stream = b.stream
	batch.MarkerKey = b.markerKey
	// The next batch is likely the size of this one (a snapshot's cut at
	// maxOps or maxBytes, a steady load's): room for it at once saves the
	// buffer growing its way there, a copy of all it holds each time
	// (recycled batches lose their buffers to the collector).
	size := batch.Size()
	b.cur = writer.NewBatchSized(min(size+size/8, b.maxBytes+64<<10))
	b.unitStart = 0
	b.dirty = false
	b.units = 0
	b.lastSubmit = time.Now()
	return b.w.Submit(ctx, batch)
}
