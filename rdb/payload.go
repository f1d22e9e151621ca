package rdb

import (
	"bytes"
	"io"
	"os"
	"sync"
)

// Payload holds the raw bytes of one value exactly as they appear in the RDB
// stream (after the type byte and the key). A value up to payloadChunk bytes
// lives in one slice; a bigger one in pooled chunks of that size; one bigger
// than Options.MemLimit is spilled to a temporary file.
//
// A Payload is owned by its Record: it is valid until Record.Release (or
// Reader.Close for spilled payloads not yet released).
type Payload struct {
	mem    []byte
	chunks [][]byte // a value over payloadChunk bytes (mem is then empty)
	file   *os.File
	path   string // non-empty when the file could not be unlinked at creation
	n      int64
	r      *Reader // owner, for spill bookkeeping
}

// payloadChunk is the size of the chunks a big value is captured into. A
// value arrives in read-buffer-sized pieces; captured into one slice that
// doubles as it grows, a 27 MB hash had ~54 MB of fresh memory faulted in
// and was copied twice — with a few such keys, 9 % of ferry's CPU in a
// cluster full sync, most of it page faults. Chunks are never copied to
// grow and come back from the pool for the next big value.
const payloadChunk = 1 << 20

var chunkPool = sync.Pool{New: func() any { return new([payloadChunk]byte) }}

func getChunk() []byte { return chunkPool.Get().(*[payloadChunk]byte)[:0] }

func putChunks(cs [][]byte) {
	for _, c := range cs {
		chunkPool.Put((*[payloadChunk]byte)(c[:payloadChunk]))
	}
}

// Len returns the number of raw value bytes.
func (p *Payload) Len() int64 {
	if p == nil {
		return 0
	}
	return p.n
}

// Spilled reports whether the bytes live in a temporary file.
func (p *Payload) Spilled() bool { return p != nil && p.file != nil }

// Bytes returns the in-memory bytes, or nil when the payload was spilled to
// disk or is held in chunks (use Open then). The slice must not be modified.
func (p *Payload) Bytes() []byte {
	b, _ := p.flat()
	return b
}

// flat returns the bytes when they are in one slice in memory.
func (p *Payload) flat() ([]byte, bool) {
	if p == nil {
		return nil, true
	}
	if p.file != nil || p.chunks != nil {
		return nil, false
	}
	return p.mem[:p.n], true
}

// Open returns a reader over the raw bytes from the start. It can be called
// any number of times, also concurrently; each reader is independent.
func (p *Payload) Open() io.Reader { return p.openAt(0) }

func (p *Payload) openAt(off int64) io.Reader {
	if p == nil || off >= p.n {
		return bytes.NewReader(nil)
	}
	if p.file != nil {
		return io.NewSectionReader(p.file, off, p.n-off)
	}
	if p.chunks != nil {
		rs := make([]io.Reader, 0, len(p.chunks))
		for _, c := range p.chunks {
			if off >= int64(len(c)) {
				off -= int64(len(c))
				continue
			}
			rs = append(rs, bytes.NewReader(c[off:]))
			off = 0
		}
		return io.MultiReader(rs...)
	}
	return bytes.NewReader(p.mem[off:p.n])
}

// release frees the spill file (if any) and empties the payload; the memory
// buffer is kept for reuse.
func (p *Payload) release() {
	if p.file != nil {
		if p.r != nil {
			p.r.forgetSpill(p)
		}
		p.closeFile()
	}
	p.dropChunks()
	p.mem = p.mem[:0]
	p.n = 0
	p.r = nil
}

func (p *Payload) dropChunks() {
	putChunks(p.chunks)
	p.chunks = nil
}

// eachInMemory hands f the bytes held in memory, in order: the slice, then
// the chunks.
func (p *Payload) eachInMemory(f func([]byte) error) error {
	if len(p.mem) > 0 {
		if err := f(p.mem); err != nil {
			return err
		}
	}
	for _, c := range p.chunks {
		if err := f(c); err != nil {
			return err
		}
	}
	return nil
}

// put appends b to the bytes in memory.
func (p *Payload) put(b []byte) {
	p.n += int64(len(b))
	if p.chunks == nil {
		if len(p.mem)+len(b) <= payloadChunk {
			p.mem = append(growPayload(p.mem, len(b), payloadChunk), b...)
			return
		}
		p.chunks = append(p.chunks, append(getChunk(), p.mem...))
		p.mem = p.mem[:0]
	}
	for len(b) > 0 {
		last := p.chunks[len(p.chunks)-1]
		if len(last) == cap(last) {
			last = getChunk()
			p.chunks = append(p.chunks, last)
		}
		n := copy(last[len(last):cap(last)], b)
		p.chunks[len(p.chunks)-1] = last[:len(last)+n]
		b = b[n:]
	}
}

func (p *Payload) closeFile() {
	if p.file == nil {
		return
	}
	p.file.Close()
	if p.path != "" {
		os.Remove(p.path)
	}
	p.file, p.path = nil, ""
}

// spillWrite appends b to payload p, moving it to a temporary file once it
// grows beyond the memory limit.
func (r *Reader) spillWrite(p *Payload, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if p.file == nil {
		if p.n+int64(len(b)) <= r.opt.MemLimit {
			p.put(b)
			return nil
		}
		f, err := os.CreateTemp(r.opt.SpillDir, "ferry-rdb-*.spill")
		if err != nil {
			return err
		}
		p.file = f
		// Unlink right away where the OS allows it: the data stays reachable
		// through the open file and nothing is left behind after a crash.
		if os.Remove(f.Name()) != nil {
			p.path = f.Name()
		}
		r.trackSpill(p)
		err = p.eachInMemory(func(b []byte) error {
			_, err := f.Write(b)
			return err
		})
		if err != nil {
			return err
		}
		p.dropChunks()
		p.mem = p.mem[:0]
	}
	if _, err := p.file.Write(b); err != nil {
		return err
	}
	p.n += int64(len(b))
	return nil
}

// growPayload makes room for n more bytes in mem, at least doubling its
// capacity (up to limit): append's own growth (a quarter at a time past a
// few hundred bytes) copies more often.
func growPayload(mem []byte, n int, limit int64) []byte {
	need := len(mem) + n
	if need <= cap(mem) {
		return mem
	}
	c := max(2*cap(mem), need)
	if int64(c) > limit {
		c = max(int(limit), need)
	}
	grown := make([]byte, len(mem), c)
	copy(grown, mem)
	return grown
}

func (r *Reader) trackSpill(p *Payload) {
	p.r = r
	r.spillMu.Lock()
	if r.spills == nil {
		r.spills = make(map[*Payload]struct{})
	}
	r.spills[p] = struct{}{}
	r.spillMu.Unlock()
}

func (r *Reader) forgetSpill(p *Payload) {
	r.spillMu.Lock()
	delete(r.spills, p)
	r.spillMu.Unlock()
}

func (r *Reader) closeSpills() {
	r.spillMu.Lock()
	sp := r.spills
	r.spills = nil
	r.spillMu.Unlock()
	for p := range sp {
		p.closeFile()
		p.n = 0
	}
}

// Records and their buffers are recycled through a pool: a caller that
// releases every record makes framing allocation-free in steady state.
var recordPool = sync.Pool{New: func() any { return new(Record) }}

// buffers bigger than this are not kept for reuse.
const maxPooledBuf = 1 << 20

func getRecord() *Record {
	rec := recordPool.Get().(*Record)
	rec.pooled = false
	return rec
}

// Release frees the record's resources (removing a spilled payload's file)
// and recycles it. The caller must not use the Record, its Key, Aux, Code or
// Value (nor readers obtained from Value.Open) afterwards. Calling Release is
// optional for in-memory records (the garbage collector reclaims them) but
// recommended: it makes framing allocation-free.
func (rec *Record) Release() {
	if rec == nil || rec.pooled {
		return
	}
	rec.value.release()
	rec.pooled = true
	if cap(rec.value.mem) > maxPooledBuf {
		rec.value.mem = nil
	}
	if cap(rec.keyBuf) > maxPooledBuf {
		rec.keyBuf = nil
	}
	if cap(rec.auxBuf) > maxPooledBuf {
		rec.auxBuf = nil
	}
	rec.Key, rec.Aux, rec.Code, rec.Value = nil, [2][]byte{}, nil, nil
	recordPool.Put(rec)
}
