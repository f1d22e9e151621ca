// Package spool is a byte pipe between one producer and one consumer that never
// makes the producer wait for the consumer: it holds up to MemLimit bytes in
// memory and spills the rest to segment files on disk.
//
// ferry's source reader writes the replication stream into a Spool at network
// speed, so the source never sees a slow replica (Redis disconnects a replica
// whose output buffer passes client-output-buffer-limit); the appliers read it
// at their own pace.
//
// The stream is strict FIFO. It is made of three parts, always consumed in
// this order:
//
//  1. the consumer's read-ahead buffer (bytes already pulled from disk),
//  2. the memory part (a queue of pooled chunks, at most MemLimit bytes),
//  3. the disk part (segment files, the newest with an in-memory write buffer).
//
// Write appends to memory while the disk part is empty and memory has room;
// otherwise to disk. Once anything is on disk, every later write goes to disk
// until the consumer has drained the disk part; then memory again.
//
// Disk I/O is batched: writes go through a write buffer (flushed when full or
// when a segment is complete), reads through a read-ahead buffer; nothing is
// fsynced — the spool is ephemeral, after a crash ferry resumes from the
// target's applied position. A consumer that catches up with the unflushed
// tail copies it straight from the write buffer, so it never waits for a
// flush; bytes it has already consumed are not written to the file at all.
// A fully consumed segment file is deleted at once.
//
// Memory: at most MemLimit bytes of data, plus at most two partly used chunks
// (256 KiB each) and two fixed I/O buffers (min(1 MiB, max(64 KiB, MemLimit/4),
// SegmentSize) each), whatever the lag. Chunks are reused while the memory
// part holds data; once it is drained the spool keeps four and lets the
// runtime have the rest, so memory a burst took does not stay for the run.
//
// Segment files are named ferry-spool-<id>-<seq>.seg next to a lock file
// ferry-spool-<id>.lock that the owning Spool holds with flock(2). New removes
// every file of that naming whose lock is not held — the leftovers of a crashed
// run — and leaves live spools sharing the directory alone (on platforms
// without flock every such file is removed: give each spool its own Dir there).
//
// A producer that reads from a socket can read straight into the spool's
// memory: Buffer lends it the free end of the last chunk, and a Write of
// what it read there appends it without a copy (the consumer's Read copies
// it once, into the consumer's buffer). That saved one copy of every byte of
// a sync.
//
// Concurrency: Buffer, Write and CloseWrite from one producer goroutine, Read
// from one consumer goroutine, Stats and Close from any goroutine.
package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Defaults for zero Options fields.
const (
	DefaultMemLimit    = 64 << 20
	DefaultSegmentSize = 64 << 20
)

const (
	chunkSize    = 256 << 10 // memory chunk: a snapshot's reads (see Buffer) are up to this long
	maxIOBufSize = 1 << 20   // write buffer and read-ahead buffer
	minIOBufSize = 64 << 10

	// keepFree is how many free chunks a drained memory part keeps. A
	// stream that keeps up needs one or two (a live stream's bytes between
	// two reads fit in one chunk). The rest of what a burst took goes back
	// to the runtime, which returns it to the OS: a sync that met one burst
	// held up to MemLimit it no longer used for the rest of its run (a
	// weeks-long sync, peak RSS for good).
	keepFree = 4
)

var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrWriteClosed is returned by Write after CloseWrite.
	ErrWriteClosed = errors.New("spool: write after CloseWrite")
	// ErrFull is returned by Write when accepting p would take the disk part
	// past Options.MaxDisk. Nothing of p was accepted; the spool stays usable
	// and the same Write can succeed once the consumer has freed a segment.
	ErrFull = errors.New("spool: disk limit reached")
)

// Options configure a Spool. Zero values take the defaults.
type Options struct {
	// Dir holds the segment files; created if missing. Default:
	// $TMPDIR/ferry-spool. Several spools may share one Dir.
	Dir string
	// MemLimit is the number of bytes held in memory before spilling to disk
	// (default 64 MiB).
	MemLimit int64
	// SegmentSize is the size of one disk segment file (default 64 MiB). Disk
	// space is reclaimed one whole segment at a time.
	SegmentSize int64
	// MaxDisk caps the bytes in live segment files (consumed bytes of a
	// segment that is still being read count until the file is deleted);
	// past it Write returns ErrFull. 0 means unlimited.
	MaxDisk int64
}

// Stats is a snapshot of a Spool's counters.
type Stats struct {
	Written     int64 // bytes accepted by Write
	Read        int64 // bytes returned by Read
	InMemory    int64 // bytes in the memory part
	OnDisk      int64 // bytes of the disk part not yet returned by Read (Written-Read = InMemory+OnDisk)
	Segments    int   // live segment files
	MaxInMemory int64 // high-water mark of InMemory
	Pooled      int64 // bytes of free chunks kept for reuse
}

type chunk struct {
	b    []byte
	r, w int
}

// chunkQueue is a FIFO ring of chunks; it only allocates when it grows.
type chunkQueue struct {
	buf  []*chunk
	head int
	n    int
}

func (q *chunkQueue) push(c *chunk) {
	if q.n == len(q.buf) {
		nb := make([]*chunk, max(16, 2*len(q.buf)))
		for i := range q.n {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = c
	q.n++
}

func (q *chunkQueue) front() *chunk { return q.buf[q.head] }

func (q *chunkQueue) back() *chunk {
	if q.n == 0 {
		return nil
	}
	return q.buf[(q.head+q.n-1)%len(q.buf)]
}

func (q *chunkQueue) pop() *chunk {
	c := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return c
}

// segment is one disk file. size: bytes written to it (file + write buffer);
// flushed: bytes in the file; rpos: bytes the consumer has pulled from it.
// Data in [flushed, size) lives in Spool.wbuf.
type segment struct {
	f       *os.File
	path    string
	size    int64
	flushed int64
	rpos    int64
	sealed  bool // full: the producer writes no more to it
}

func (g *segment) destroy() error {
	var errs []error
	if err := g.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		errs = append(errs, fmt.Errorf("spool: close segment %s: %w", g.path, err))
	}
	if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("spool: remove segment %s: %w", g.path, err))
	}
	return errors.Join(errs...)
}

// Spool is a bounded-memory, disk-spilling FIFO byte pipe. See the package
// documentation.
type Spool struct {
	dir         string
	prefix      string // ferry-spool-<id>
	lock        *os.File
	memLimit    int64
	segmentSize int64
	maxDisk     int64
	ioBufSize   int
	chunkSize   int

	ops sync.WaitGroup // segment file operations Close must wait for

	mu   sync.Mutex
	cond sync.Cond // signalled when data arrives, on CloseWrite, Close, failure

	closed      bool
	writeClosed bool
	err         error // sticky I/O failure; the stream is broken
	cleanupErr  error // failures to delete consumed segments, reported by Close

	// memory part
	mem      chunkQueue
	free     []*chunk
	memBytes int64
	lent     *chunk // the last chunk, whose free end Buffer lent the producer

	// disk part
	segs     []*segment // FIFO; the last one may be wseg
	wseg     *segment   // segment being written, nil if none
	wbuf     []byte     // wseg's unflushed bytes [wseg.flushed, wseg.size)
	flushing bool       // producer is writing wbuf to wseg outside the lock
	diskFoot int64      // sum of size over segs, checked against maxDisk
	diskIn   int64      // bytes ever written to the disk part
	diskOut  int64      // bytes of the disk part returned by Read
	seq      int

	// read-ahead buffer, filled from the head segment; rbuf[rr:rw] is unread
	// and precedes everything else in the spool. Owned by the consumer.
	rbuf   []byte
	rr, rw int

	written  int64
	read     int64
	maxInMem int64

	inPlace    int64 // bytes written where Buffer lent them
	spills     int64 // times the disk part went from empty to non-empty
	segCreated int64
}

// New creates a Spool, creating opt.Dir if missing and removing leftover
// segment files of crashed runs from it.
func New(opt Options) (*Spool, error) {
	if opt.MemLimit < 0 || opt.SegmentSize < 0 || opt.MaxDisk < 0 {
		return nil, fmt.Errorf("spool: negative option (MemLimit %d, SegmentSize %d, MaxDisk %d)",
			opt.MemLimit, opt.SegmentSize, opt.MaxDisk)
	}
	if opt.Dir == "" {
		opt.Dir = filepath.Join(os.TempDir(), "ferry-spool")
	}
	if opt.MemLimit == 0 {
		opt.MemLimit = DefaultMemLimit
	}
	if opt.SegmentSize == 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create dir: %w", err)
	}
	if err := removeLeftovers(opt.Dir); err != nil {
		return nil, err
	}
	prefix, lock, err := createLock(opt.Dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:         opt.Dir,
		prefix:      prefix,
		lock:        lock,
		memLimit:    opt.MemLimit,
		segmentSize: opt.SegmentSize,
		maxDisk:     opt.MaxDisk,
		ioBufSize:   int(min(max(opt.MemLimit/4, minIOBufSize), maxIOBufSize, opt.SegmentSize)),
		chunkSize:   int(min(opt.MemLimit, chunkSize)),
	}
	s.cond.L = &s.mu
	return s, nil
}

// Write appends a copy of p to the spool. It never waits for the consumer
// (only for the local disk, when spilling). It accepts all of p or returns an
// error: ErrFull (nothing accepted, see Options.MaxDisk), ErrWriteClosed,
// ErrClosed, or a disk failure, after which the spool is broken and Read
// returns the same error.
func (s *Spool) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeErrLocked(); err != nil {
		return 0, err
	}
	if s.takeLentLocked(p) {
		s.cond.Signal()
		return len(p), nil
	}
	if s.maxDisk > 0 {
		need := int64(len(p))
		if len(s.segs) == 0 {
			need -= s.memLimit - s.memBytes
		}
		if need > 0 && s.diskFoot+need > s.maxDisk {
			return 0, ErrFull
		}
	}
	n, err := s.writeLocked(p)
	if n > 0 {
		s.cond.Signal()
	}
	return n, err
}

// Buffer lends the producer up to n bytes at the end of the memory part to
// read into: a Write whose p starts where the returned slice does appends
// those bytes without copying them. Any other Write (or Buffer) takes the
// loan back. It returns nil when the stream is on disk or memory is full:
// the producer then reads into a buffer of its own and Writes that. The
// slice may be shorter than n (what is left in the last chunk, or under
// MemLimit); it is never empty.
func (s *Spool) Buffer(n int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lent = nil
	room := min(int64(n), s.memLimit-s.memBytes)
	if s.writeErrLocked() != nil || len(s.segs) > 0 || room <= 0 {
		return nil
	}
	c := s.mem.back()
	if c == nil || c.w == len(c.b) {
		c = s.getChunkLocked()
		s.mem.push(c)
	}
	s.lent = c
	return c.b[c.w : c.w+int(min(room, int64(len(c.b)-c.w)))]
}

// takeLentLocked appends p in place when it lies at the start of the room
// Buffer lent; either way the loan ends.
func (s *Spool) takeLentLocked(p []byte) bool {
	c := s.lent
	s.lent = nil
	if c == nil || len(p) == 0 || len(p) > len(c.b)-c.w || &p[0] != &c.b[c.w] ||
		len(s.segs) > 0 || s.mem.back() != c || s.memBytes+int64(len(p)) > s.memLimit {
		return false
	}
	c.w += len(p)
	s.inPlace += int64(len(p))
	s.memBytes += int64(len(p))
	s.written += int64(len(p))
	s.maxInMem = max(s.maxInMem, s.memBytes)
	return true
}

func (s *Spool) writeErrLocked() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.err != nil:
		return s.err
	case s.writeClosed:
		return ErrWriteClosed
	}
	return nil
}

func (s *Spool) writeLocked(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if err := s.writeErrLocked(); err != nil {
			return total - len(p), err
		}
		if len(s.segs) == 0 && s.memBytes < s.memLimit {
			p = p[s.memPutLocked(p):]
			continue
		}
		if s.wseg == nil {
			if err := s.newSegmentLocked(); err != nil {
				return total - len(p), err
			}
			continue
		}
		seg := s.wseg
		k := int(min(int64(len(p)), s.segmentSize-seg.size, int64(cap(s.wbuf)-len(s.wbuf))))
		s.wbuf = append(s.wbuf, p[:k]...)
		seg.size += int64(k)
		s.diskFoot += int64(k)
		s.diskIn += int64(k)
		s.written += int64(k)
		p = p[k:]
		full := seg.size == s.segmentSize
		if full || len(s.wbuf) == cap(s.wbuf) {
			if err := s.flushLocked(); err != nil {
				return total - len(p), err
			}
			if full {
				seg.sealed = true
				s.wseg = nil
			}
		}
	}
	return total, nil
}

// memPutLocked copies as much of p as fits under memLimit into chunks.
func (s *Spool) memPutLocked(p []byte) int {
	k := int(min(int64(len(p)), s.memLimit-s.memBytes))
	for done := 0; done < k; {
		c := s.mem.back()
		if c == nil || c.w == len(c.b) {
			c = s.getChunkLocked()
			s.mem.push(c)
		}
		m := copy(c.b[c.w:], p[done:k])
		c.w += m
		done += m
	}
	s.memBytes += int64(k)
	s.written += int64(k)
	s.maxInMem = max(s.maxInMem, s.memBytes)
	return k
}

// memGetLocked moves up to len(p) bytes from the memory part into p.
func (s *Spool) memGetLocked(p []byte) int {
	n := 0
	for n < len(p) && s.mem.n > 0 {
		c := s.mem.front()
		m := copy(p[n:], c.b[c.r:c.w])
		c.r += m
		n += m
		if c == s.lent {
			break // the last chunk, being filled: it stays
		}
		if c.r == c.w {
			s.mem.pop()
			c.r, c.w = 0, 0
			s.free = append(s.free, c)
		}
	}
	s.memBytes -= int64(n)
	if s.memBytes == 0 && len(s.free) > keepFree {
		// Drained: the burst that needed these chunks is over.
		clear(s.free[keepFree:])
		s.free = s.free[:keepFree]
	}
	return n
}

// getChunkLocked reuses a free chunk. While the memory part holds data the
// free list is not trimmed (the chunks in use plus the free ones never
// exceed the peak in use, which MemLimit bounds), so a spool that fills
// again before it drains allocates nothing.
func (s *Spool) getChunkLocked() *chunk {
	if n := len(s.free); n > 0 {
		c := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		return c
	}
	return &chunk{b: make([]byte, s.chunkSize)}
}

// newSegmentLocked creates the next segment file (outside the lock) and makes
// it the write segment.
func (s *Spool) newSegmentLocked() error {
	s.seq++
	path := filepath.Join(s.dir, fmt.Sprintf("%s-%08d.seg", s.prefix, s.seq))
	s.ops.Add(1)
	defer s.ops.Done()
	s.mu.Unlock()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	s.mu.Lock()
	if s.closed {
		if err == nil {
			f.Close()
			os.Remove(path)
		}
		return ErrClosed
	}
	if err != nil {
		return s.failLocked(fmt.Errorf("spool: create segment %s: %w", path, err))
	}
	g := &segment{f: f, path: path}
	if len(s.segs) == 0 {
		s.spills++
	}
	s.segs = append(s.segs, g)
	s.segCreated++
	s.wseg = g
	if s.wbuf == nil {
		s.wbuf = make([]byte, 0, s.ioBufSize)
	}
	return nil
}

// flushLocked writes the write buffer to the write segment, outside the lock.
// Bytes the consumer has already taken from the buffer are skipped (the file
// gets a hole there that is never read).
func (s *Spool) flushLocked() error {
	g := s.wseg
	buf, off := s.wbuf, g.flushed
	if g.rpos > off {
		buf, off = buf[g.rpos-off:], g.rpos
	}
	if len(buf) > 0 {
		s.flushing = true
		s.mu.Unlock()
		_, err := g.f.WriteAt(buf, off)
		s.mu.Lock()
		s.flushing = false
		if s.closed {
			return ErrClosed
		}
		if err != nil {
			return s.failLocked(fmt.Errorf("spool: write segment %s: %w", g.path, err))
		}
	}
	g.flushed = g.size
	s.wbuf = s.wbuf[:0]
	s.cond.Signal() // the consumer may be waiting to retire the segment
	return nil
}

func (s *Spool) failLocked(err error) error {
	if s.err == nil {
		s.err = err
	}
	s.cond.Broadcast()
	return s.err
}

// Read reads up to len(p) bytes in FIFO order. It blocks until data is
// available; it returns io.EOF once CloseWrite was called and everything was
// read, ErrClosed after Close, and the spool's disk failure if there was one.
func (s *Spool) Read(p []byte) (int, error) {
	var dead []*segment
	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			s.destroy(dead)
			return 0, ErrClosed
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			s.destroy(dead)
			return 0, err
		}
		if len(p) == 0 {
			s.mu.Unlock()
			s.destroy(dead)
			return 0, nil
		}

		// 1. read-ahead buffer: disk bytes older than anything else.
		if s.rr < s.rw {
			n := copy(p, s.rbuf[s.rr:s.rw])
			s.rr += n
			s.diskOut += int64(n)
			s.read += int64(n)
			s.mu.Unlock()
			s.destroy(dead)
			return n, nil
		}

		// 2. memory part.
		if s.memBytes > 0 {
			n := s.memGetLocked(p)
			s.read += int64(n)
			s.mu.Unlock()
			s.destroy(dead)
			return n, nil
		}

		// 3. disk part.
		dead = s.reapLocked(dead)
		if len(s.segs) > 0 {
			g := s.segs[0]
			if g.rpos < g.flushed {
				n, err := s.readFileLocked(g, p)
				if err != nil {
					continue // closed or failed: reported at the top
				}
				dead = s.reapLocked(dead)
				if n > 0 { // read directly into p
					s.diskOut += int64(n)
					s.read += int64(n)
					s.mu.Unlock()
					s.destroy(dead)
					return n, nil
				}
				continue // filled the read-ahead buffer
			}
			if g.rpos < g.size { // unflushed tail, straight from the write buffer
				n := copy(p, s.wbuf[g.rpos-g.flushed:])
				g.rpos += int64(n)
				s.diskOut += int64(n)
				s.read += int64(n)
				dead = s.reapLocked(dead)
				s.mu.Unlock()
				s.destroy(dead)
				return n, nil
			}
		}

		if s.writeClosed {
			s.mu.Unlock()
			s.destroy(dead)
			return 0, io.EOF
		}
		if len(dead) > 0 {
			s.mu.Unlock()
			s.destroy(dead)
			dead = dead[:0]
			s.mu.Lock()
			continue
		}
		s.cond.Wait()
	}
}

// readFileLocked reads flushed bytes of the head segment g, outside the lock:
// straight into p when p is at least as large as the read-ahead buffer
// (returns the count), else into the read-ahead buffer (returns 0).
func (s *Spool) readFileLocked(g *segment, p []byte) (int, error) {
	avail := g.flushed - g.rpos
	direct := len(p) >= s.ioBufSize
	var dst []byte
	if direct {
		dst = p[:min(int64(len(p)), avail)]
	} else {
		if s.rbuf == nil {
			s.rbuf = make([]byte, s.ioBufSize)
		}
		dst = s.rbuf[:min(int64(len(s.rbuf)), avail)]
	}
	off := g.rpos
	s.mu.Unlock()
	n, err := g.f.ReadAt(dst, off)
	s.mu.Lock()
	if s.closed {
		return 0, ErrClosed
	}
	if n < len(dst) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, s.failLocked(fmt.Errorf("spool: read segment %s at %d: %w", g.path, off, err))
	}
	g.rpos += int64(n)
	if direct {
		return n, nil
	}
	s.rr, s.rw = 0, n
	return 0, nil
}

// reapLocked removes fully consumed segments from the head of the disk part
// and returns them for deletion outside the lock. The write segment is retired
// too once the consumer has everything in it (unless a flush is in flight),
// so the next Write goes to memory again.
func (s *Spool) reapLocked(dead []*segment) []*segment {
	for len(s.segs) > 0 {
		g := s.segs[0]
		if g.rpos < g.size {
			break
		}
		if g == s.wseg {
			if s.flushing {
				break
			}
			s.wseg = nil
			s.wbuf = s.wbuf[:0]
		} else if !g.sealed {
			break
		}
		s.segs[0] = nil
		s.segs = s.segs[1:]
		s.diskFoot -= g.size
		s.ops.Add(1)
		dead = append(dead, g)
	}
	return dead
}

func (s *Spool) destroy(dead []*segment) {
	for _, g := range dead {
		if err := g.destroy(); err != nil {
			s.mu.Lock()
			s.cleanupErr = errors.Join(s.cleanupErr, err)
			s.mu.Unlock()
		}
		s.ops.Done()
	}
}

// CloseWrite tells the consumer that the producer is done: Read returns io.EOF
// once everything written has been read.
func (s *Spool) CloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.writeClosed = true
	s.cond.Broadcast()
	return nil
}

// Close releases the spool from any goroutine: a blocked Read returns
// ErrClosed, the memory is released and all segment files and the lock file
// are deleted before Close returns. Unread data is discarded. Close is
// idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	segs := s.segs
	s.segs, s.wseg, s.wbuf = nil, nil, nil
	s.mem, s.free, s.memBytes = chunkQueue{}, nil, 0
	s.diskFoot = 0
	s.cond.Broadcast()
	s.mu.Unlock()

	var errs []error
	for _, g := range segs {
		errs = append(errs, g.destroy())
	}
	s.ops.Wait() // deletions by Read, a segment being created by Write
	s.mu.Lock()
	errs = append(errs, s.cleanupErr)
	s.mu.Unlock()
	errs = append(errs, releaseLock(s.lock))
	return errors.Join(errs...)
}

// Stats returns a snapshot of the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Written:     s.written,
		Read:        s.read,
		InMemory:    s.memBytes,
		OnDisk:      s.diskIn - s.diskOut,
		Segments:    len(s.segs),
		MaxInMemory: s.maxInMem,
		Pooled:      int64(len(s.free) * s.chunkSize),
	}
	if s.closed {
		st.InMemory, st.OnDisk = 0, 0
	}
	return st
}
