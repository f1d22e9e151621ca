package writer

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"ferry/resp"
)

// Batch is the unit a writer applies: commands already encoded as RESP, each
// with the target db it must run in, and the position the target reaches once
// the whole batch is applied. In fenced mode a batch is applied atomically
// (MULTI/EXEC together with the position marker), so it is also the unit of
// replay after a dropped connection.
type Batch struct {
	buf []byte
	ops []opRef
	// Pos is where the target stands once this batch is applied. The writer
	// fills in Seq; the producer sets the rest.
	Pos Position
	seq uint64
}

type opRef struct {
	start, end int
	db         int // -1: any db (FLUSHALL, FUNCTION, SWAPDB…)
}

var batchPool = sync.Pool{New: func() any { return &Batch{} }}

// NewBatch returns an empty batch, possibly recycled.
func NewBatch() *Batch {
	b := batchPool.Get().(*Batch)
	b.reset()
	return b
}

func (b *Batch) reset() {
	b.buf = b.buf[:0]
	b.ops = b.ops[:0]
	b.Pos = Position{}
	b.seq = 0
}

// Release returns b to the pool. The caller must not use it afterwards.
func (b *Batch) Release() {
	if cap(b.buf) > 8<<20 {
		b.buf = nil // do not keep a huge RESTORE buffer alive
	}
	batchPool.Put(b)
}

// Len is the number of commands in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Size is the number of encoded bytes in the batch.
func (b *Batch) Size() int { return len(b.buf) }

// Add appends one command to run in db.
func (b *Batch) Add(db int, args ...[]byte) {
	start := len(b.buf)
	b.buf = resp.AppendCommand(b.buf, args...)
	b.ops = append(b.ops, opRef{start: start, end: len(b.buf), db: db})
}

// AddStrings is Add for string arguments.
func (b *Batch) AddStrings(db int, args ...string) {
	start := len(b.buf)
	b.buf = resp.AppendCommandStrings(b.buf, args...)
	b.ops = append(b.ops, opRef{start: start, end: len(b.buf), db: db})
}

// AddEncoded appends one command that is already RESP-encoded (for example
// copied verbatim from the replication stream).
func (b *Batch) AddEncoded(db int, enc []byte) {
	start := len(b.buf)
	b.buf = append(b.buf, enc...)
	b.ops = append(b.ops, opRef{start: start, end: len(b.buf), db: db})
}

// AddWith appends one command that the caller encodes itself into the batch's
// buffer (for a RESTORE whose payload is written straight from the RDB
// record without an intermediate copy). encode must append exactly one
// complete RESP command to dst and return it.
func (b *Batch) AddWith(db int, encode func(dst []byte) ([]byte, error)) error {
	start := len(b.buf)
	out, err := encode(b.buf)
	if err != nil {
		b.buf = b.buf[:start]
		return err
	}
	b.buf = out
	b.ops = append(b.ops, opRef{start: start, end: len(b.buf), db: db})
	return nil
}

// Append lets encode functions use io.Writer APIs on a byte slice.
type Append struct{ B []byte }

func (a *Append) Write(p []byte) (int, error) {
	a.B = append(a.B, p...)
	return len(p), nil
}

var _ io.Writer = (*Append)(nil)

// op returns the encoded bytes and db of command i.
func (b *Batch) op(i int) ([]byte, int) {
	o := b.ops[i]
	return b.buf[o.start:o.end], o.db
}

// Describe names command i for an error message: the command and its key,
// never its values (they may be large or secret).
func (b *Batch) Describe(i int) string {
	enc, db := b.op(i)
	args, err := resp.ParseCommand(enc)
	if err != nil || len(args) == 0 {
		return fmt.Sprintf("command #%d of a batch", i)
	}
	name := strings.ToUpper(string(args[0]))
	if len(args) > 1 && !keyless(name) {
		return fmt.Sprintf("%s %q (db %d)", name, clipKey(args[1]), db)
	}
	return name
}

// Args decodes command i (off the hot path: re-routing, error handling).
func (b *Batch) Args(i int) [][]byte {
	enc, _ := b.op(i)
	args, _ := resp.ParseCommand(enc)
	return args
}

// DB is the db of command i.
func (b *Batch) DB(i int) int { return b.ops[i].db }

// without returns a new batch holding every command of b except those in
// drop, with the same position.
func (b *Batch) without(drop map[int]bool) *Batch {
	nb := NewBatch()
	for i := range b.ops {
		if drop[i] {
			continue
		}
		enc, db := b.op(i)
		nb.AddEncoded(db, enc)
	}
	nb.Pos = b.Pos
	return nb
}

func keyless(name string) bool {
	switch name {
	case "FLUSHALL", "FLUSHDB", "SWAPDB", "FUNCTION", "SCRIPT", "SELECT", "PING", "MULTI", "EXEC", "PUBLISH":
		return true
	}
	return false
}

func clipKey(k []byte) string {
	if len(k) > 128 {
		return string(k[:128]) + "…"
	}
	return string(k)
}

// Truncate drops every command from the n-th on (an incomplete source
// transaction that must not be applied in part).
func (b *Batch) Truncate(n int) {
	if n >= len(b.ops) {
		return
	}
	if n <= 0 {
		b.buf = b.buf[:0]
		b.ops = b.ops[:0]
		return
	}
	b.buf = b.buf[:b.ops[n-1].end]
	b.ops = b.ops[:n]
}
