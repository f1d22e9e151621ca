package rdb

import (
	"bytes"
	"io"
	"os"
	"sync"
)

// Payload holds the raw bytes of one value exactly as they appear in the RDB
// stream (after the type byte and the key). Small values live in memory;
// values bigger than Options.MemLimit are spilled to a temporary file.
//
// A Payload is owned by its Record: it is valid until Record.Release (or
// Reader.Close for spilled payloads not yet released).
type Payload struct {
	mem  []byte
	file *os.File
	path string // non-empty when the file could not be unlinked at creation
	n    int64
	r    *Reader // owner, for spill bookkeeping
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
// disk (use Open then). The slice must not be modified.
func (p *Payload) Bytes() []byte {
	if p == nil || p.file != nil {
		return nil
	}
	return p.mem
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
	p.mem = p.mem[:0]
	p.n = 0
	p.r = nil
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
			p.mem = append(growPayload(p.mem, len(b), r.opt.MemLimit), b...)
			p.n += int64(len(b))
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
		if len(p.mem) > 0 {
			if _, err := f.Write(p.mem); err != nil {
				return err
			}
		}
		p.mem = p.mem[:0]
	}
	if _, err := p.file.Write(b); err != nil {
		return err
	}
	p.n += int64(len(b))
	return nil
}

// growPayload makes room for n more bytes in mem, at least doubling its
// capacity (up to limit). A big value arrives in read-buffer-sized pieces,
// and append's own growth (a quarter at a time past a few hundred bytes)
// copied a 30 MB value about four times over, each time into freshly
// faulted pages: 12 % of ferry's CPU in a full sync with a few such values.
// Doubling allocates at most twice the value and copies it at most once
// more.
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
