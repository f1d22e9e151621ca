package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fillStream fills b with the test stream from offset off: a non-repeating,
// position-dependent byte sequence, so any loss, duplication or reordering
// shows up as a mismatch.
func fillStream(b []byte, off int64) {
	i := 0
	for ; i < len(b) && (off+int64(i))&7 != 0; i++ {
		b[i] = streamByte(off + int64(i))
	}
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], splitmix(uint64(off+int64(i))>>3))
	}
	for ; i < len(b); i++ {
		b[i] = streamByte(off + int64(i))
	}
}

func streamByte(pos int64) byte { return byte(splitmix(uint64(pos)>>3) >> (8 * (pos & 7))) }

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func newSpool(t testing.TB, opt Options) *Spool {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// segFiles lists the segment files in dir.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writer writes the test stream into s.
type writer struct {
	s   *Spool
	off int64
	buf []byte
}

func (w *writer) write(t testing.TB, n int) {
	t.Helper()
	if cap(w.buf) < n {
		w.buf = make([]byte, n)
	}
	b := w.buf[:n]
	fillStream(b, w.off)
	if m, err := w.s.Write(b); err != nil || m != n {
		t.Fatalf("Write(%d) at %d = %d, %v", n, w.off, m, err)
	}
	w.off += int64(n)
}

// reader reads n bytes of the test stream from s and checks them.
type reader struct {
	s    *Spool
	off  int64
	buf  []byte
	want []byte
}

func (r *reader) read(t testing.TB, n int) {
	t.Helper()
	if cap(r.buf) < n {
		r.buf, r.want = make([]byte, n), make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.s, b); err != nil {
		t.Fatalf("read %d at %d: %v", n, r.off, err)
	}
	fillStream(r.want[:n], r.off)
	if !bytes.Equal(b, r.want[:n]) {
		t.Fatalf("stream mismatch in [%d, %d)", r.off, r.off+int64(n))
	}
	r.off += int64(n)
}

// TestFIFORandom pushes a long deterministic stream through a small memory
// limit with random write and read sizes and random pauses on both sides, so
// the spool spills and drains back to memory many times, and checks every
// byte and the sha256 of the whole stream.
func TestFIFORandom(t *testing.T) {
	const memLimit = 1 << 20
	total := int64(384 << 20)
	if testing.Short() {
		total = 48 << 20
	}
	dir := t.TempDir()
	s := newSpool(t, Options{Dir: dir, MemLimit: memLimit, SegmentSize: 4 << 20})

	var (
		wg        sync.WaitGroup
		prodSum   [sha256.Size]byte
		prodErr   error
		stop      atomic.Bool
		maxMemObs atomic.Int64
	)
	wg.Add(2)
	go func() { // producer
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		h := sha256.New()
		buf := make([]byte, 3<<20)
		for off := int64(0); off < total; {
			var n int
			switch x := rng.IntN(100); {
			case x < 5:
				n = 1 + rng.IntN(100)
			case x < 97:
				n = 16<<10 + rng.IntN(48<<10)
			default:
				n = 1 + rng.IntN(3<<20)
			}
			n = int(min(int64(n), total-off))
			b := buf[:n]
			if rng.IntN(2) == 0 { // read in place, as PSync does, when the spool lends room
				if lent := s.Buffer(n); lent != nil {
					n = 1 + rng.IntN(len(lent)) // a short read
					b = lent[:n]
				}
			}
			fillStream(b, off)
			h.Write(b)
			if m, err := s.Write(b); err != nil || m != n {
				prodErr = errors.Join(err, errors.New("short write"))
				return
			}
			off += int64(n)
			if rng.IntN(200) == 0 {
				// Let the consumer catch up — back to memory — however slow
				// this machine is.
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
					if st := s.Stats(); st.Written == st.Read {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
		}
		copy(prodSum[:], h.Sum(nil))
		prodErr = s.CloseWrite()
	}()
	go func() { // Stats from a third goroutine
		defer wg.Done()
		for !stop.Load() {
			st := s.Stats()
			maxMemObs.Store(max(maxMemObs.Load(), st.InMemory))
			if st.Written-st.Read != st.InMemory+st.OnDisk {
				t.Errorf("stats inconsistent: %+v", st)
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()

	rng := rand.New(rand.NewPCG(3, 4))
	h := sha256.New()
	buf := make([]byte, 2<<20)
	want := make([]byte, 2<<20)
	var off int64
	for {
		var n int
		switch x := rng.IntN(100); {
		case x < 5:
			n = 1 + rng.IntN(64)
		case x < 90:
			n = 4<<10 + rng.IntN(60<<10)
		default:
			n = 1 + rng.IntN(2<<20) // often >= the I/O buffer: direct reads
		}
		m, err := s.Read(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read at %d: %v", off, err)
		}
		fillStream(want[:m], off)
		if !bytes.Equal(buf[:m], want[:m]) {
			t.Fatalf("stream mismatch in [%d, %d)", off, off+int64(m))
		}
		h.Write(buf[:m])
		off += int64(m)
		if rng.IntN(300) == 0 { // stall the consumer: the producer spills
			time.Sleep(time.Duration(1+rng.IntN(30)) * time.Millisecond)
		}
	}
	stop.Store(true)
	wg.Wait()
	if prodErr != nil {
		t.Fatal(prodErr)
	}
	if off != total {
		t.Fatalf("read %d bytes, want %d", off, total)
	}
	if got := h.Sum(nil); !bytes.Equal(got, prodSum[:]) {
		t.Fatalf("sha256 %x, want %x", got, prodSum)
	}
	st := s.Stats()
	t.Logf("stats %+v, spills %d, segments created %d", st, s.spills, s.segCreated)
	if st.MaxInMemory > memLimit || maxMemObs.Load() > memLimit {
		t.Errorf("MaxInMemory %d (observed %d) > MemLimit %d", st.MaxInMemory, maxMemObs.Load(), memLimit)
	}
	if s.inPlace == 0 || s.inPlace == total {
		t.Errorf("%d of %d bytes written in place: the test did not exercise both ways", s.inPlace, total)
	}
	if s.spills < 2 || s.segCreated < 5 {
		t.Errorf("spills %d, segments created %d: the test did not exercise the disk", s.spills, s.segCreated)
	}
	if st.Segments != 0 || len(segFiles(t, dir)) != 0 {
		t.Errorf("segments left after full drain: %d, files %v", st.Segments, segFiles(t, dir))
	}
}

// TestSpillAndDrainRepeatedly checks the memory → disk → memory transitions.
func TestSpillAndDrainRepeatedly(t *testing.T) {
	const memLimit = 256 << 10
	dir := t.TempDir()
	s := newSpool(t, Options{Dir: dir, MemLimit: memLimit, SegmentSize: 200 << 10})
	w, r := &writer{s: s}, &reader{s: s}
	for round := range 5 {
		for range 80 { // 800 KiB: 256 KiB in memory, the rest on disk
			w.write(t, 10<<10)
		}
		st := s.Stats()
		if st.InMemory != memLimit || st.OnDisk != 800<<10-memLimit || st.Segments != 3 {
			t.Fatalf("round %d after spill: %+v", round, st)
		}
		if n := len(segFiles(t, dir)); n != 3 {
			t.Fatalf("round %d: %d segment files, want 3", round, n)
		}
		r.read(t, 800<<10)
		st = s.Stats()
		if st.InMemory != 0 || st.OnDisk != 0 || st.Segments != 0 || len(segFiles(t, dir)) != 0 {
			t.Fatalf("round %d after drain: %+v, files %v", round, st, segFiles(t, dir))
		}
		w.write(t, 1000) // back to memory
		st = s.Stats()
		if st.InMemory != 1000 || st.OnDisk != 0 || st.Segments != 0 {
			t.Fatalf("round %d after drain and write: %+v", round, st)
		}
		r.read(t, 1000)
	}
	if s.spills != 5 {
		t.Errorf("spills %d, want 5", s.spills)
	}
	if st := s.Stats(); st.MaxInMemory != memLimit {
		t.Errorf("MaxInMemory %d, want %d", st.MaxInMemory, memLimit)
	}
}

// TestUnflushedTail: a consumer that catches up with the writer gets the bytes
// still in the write buffer without waiting for a flush; a flush skips what it
// already took.
func TestUnflushedTail(t *testing.T) {
	const memLimit = 1 << 20 // I/O buffer 256 KiB
	dir := t.TempDir()
	s := newSpool(t, Options{Dir: dir, MemLimit: memLimit, SegmentSize: 4 << 20})
	w, r := &writer{s: s}, &reader{s: s}
	w.write(t, memLimit+100)
	files := segFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Size() != 0 {
		t.Fatalf("segment should be unflushed: %v %v", fi, err)
	}
	r.read(t, memLimit+100) // the last 100 bytes come from the write buffer
	if st := s.Stats(); st.Segments != 0 || len(segFiles(t, dir)) != 0 {
		t.Fatalf("drained segment not removed: %+v", st)
	}

	// Now with the consumer inside the buffer when it is flushed.
	w.write(t, memLimit)
	w.write(t, 100<<10)
	r.read(t, memLimit+50<<10)
	w.write(t, 300<<10) // fills the buffer: flushed, minus the 50 KiB consumed
	files = segFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Size() != 256<<10 {
		t.Fatalf("segment after flush: %v %v", fi, err)
	}
	r.read(t, 350<<10)
	w.write(t, 10)
	r.read(t, 10)
	if st := s.Stats(); st.Segments != 0 || st.OnDisk != 0 || st.InMemory != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMemoryBound writes 10× MemLimit with the consumer stopped, then drains:
// the data held in memory and the heap stay within MemLimit plus the fixed
// buffers, and writing allocates nothing per call.
func TestMemoryBound(t *testing.T) {
	const memLimit = 4 << 20 // I/O buffers 1 MiB each
	dir := t.TempDir()
	s := newSpool(t, Options{Dir: dir, MemLimit: memLimit, SegmentSize: 8 << 20})
	w := &writer{s: s, buf: make([]byte, 32<<10)}
	r := &reader{s: s, buf: make([]byte, 64<<10), want: make([]byte, 64<<10)}
	const slack = 1 << 20
	bound := uint64(memLimit + 2*chunkSize + 2*maxIOBufSize + slack)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for w.off < 10*memLimit {
		w.write(t, 32<<10)
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > bound {
		t.Errorf("allocated %d bytes while writing %d, bound %d", d, w.off, bound)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	st := s.Stats()
	t.Logf("after writing %d MiB: heap +%d KiB, %+v", w.off>>20, heap>>10, st)
	if heap > int64(bound) {
		t.Errorf("heap grew by %d bytes, bound %d", heap, bound)
	}
	if st.MaxInMemory > memLimit || st.InMemory != memLimit || st.OnDisk != 9*memLimit {
		t.Errorf("stats %+v", st)
	}

	for r.off < w.off {
		r.read(t, 64<<10)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
	st = s.Stats()
	t.Logf("after draining: heap +%d KiB, %+v", heap>>10, st)
	if heap > int64(bound) {
		t.Errorf("heap grew by %d bytes, bound %d", heap, bound)
	}
	if st.MaxInMemory > memLimit || st.Segments != 0 {
		t.Errorf("stats %+v", st)
	}
	// Drained, the spool keeps keepFree chunks and its I/O buffers: the
	// memory the lag took is the runtime's again.
	if drained := int64(keepFree*chunkSize + 2*maxIOBufSize + slack); heap > drained {
		t.Errorf("drained spool holds %d bytes of heap, want at most %d", heap, drained)
	}
}

func TestDrainedSpoolKeepsFewChunks(t *testing.T) {
	const memLimit = 4 << 20 // 16 chunks
	s := newSpool(t, Options{MemLimit: memLimit})
	w := &writer{s: s, buf: make([]byte, 32<<10)}
	r := &reader{s: s, buf: make([]byte, 32<<10), want: make([]byte, 32<<10)}
	// A new chunk is chunkSize bytes of heap; the test's own bookkeeping
	// allocates far less than one.
	allocated := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.TotalAlloc
	}

	for w.off < memLimit {
		w.write(t, 32<<10)
	}
	for r.off < memLimit/2 {
		r.read(t, 32<<10)
	}
	if st := s.Stats(); st.Pooled != memLimit/2 {
		t.Fatalf("half read: %d bytes pooled, want %d (%+v)", st.Pooled, memLimit/2, st)
	}
	// Filling up again while data is held reuses the freed chunks.
	before := allocated()
	for w.off < memLimit*3/2 {
		w.write(t, 32<<10)
	}
	if n := allocated() - before; n >= chunkSize {
		t.Errorf("refilling a spool that was not drained allocated %d bytes", n)
	}
	if st := s.Stats(); st.OnDisk != 0 || st.InMemory != memLimit {
		t.Fatalf("refilled: %+v", st)
	}

	for r.off < w.off {
		r.read(t, 32<<10)
	}
	if st := s.Stats(); st.InMemory != 0 || st.Pooled != keepFree*chunkSize {
		t.Errorf("drained: %d bytes pooled, want %d (%+v)", st.Pooled, keepFree*chunkSize, st)
	}
	// What is kept serves a stream that keeps up.
	before = allocated()
	for range 100 {
		w.write(t, 32<<10)
		r.read(t, 32<<10)
	}
	if n := allocated() - before; n >= chunkSize {
		t.Errorf("a stream that keeps up allocated %d bytes after the drain", n)
	}
}

func TestNoAllocsSteadyState(t *testing.T) {
	s := newSpool(t, Options{MemLimit: 1 << 20, SegmentSize: 256 << 20})
	p := make([]byte, 32<<10)
	q := make([]byte, 32<<10)
	if a := testing.AllocsPerRun(1000, func() {
		s.Write(p)
		s.Read(q)
	}); a != 0 {
		t.Errorf("memory path: %v allocs per Write+Read", a)
	}
	for range 40 { // spill
		s.Write(p)
	}
	if s.Stats().Segments != 1 {
		t.Fatalf("not spilled: %+v", s.Stats())
	}
	if a := testing.AllocsPerRun(1000, func() { s.Write(p) }); a != 0 {
		t.Errorf("disk path: %v allocs per Write", a)
	}
	if a := testing.AllocsPerRun(1000, func() { io.ReadFull(s, q) }); a != 0 {
		t.Errorf("disk path: %v allocs per Read", a)
	}
}

func TestCloseWriteEOF(t *testing.T) {
	for _, n := range []int{0, 1000, 1 << 20} { // empty, memory only, spilled
		s := newSpool(t, Options{MemLimit: 64 << 10, SegmentSize: 100 << 10})
		w := &writer{s: s}
		for w.off < int64(n) {
			w.write(t, min(n-int(w.off), 7000))
		}
		if err := s.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("x")); !errors.Is(err, ErrWriteClosed) {
			t.Fatalf("Write after CloseWrite: %v", err)
		}
		got, err := io.ReadAll(s)
		if err != nil || len(got) != n {
			t.Fatalf("ReadAll: %d bytes, %v; want %d", len(got), err, n)
		}
		want := make([]byte, n)
		fillStream(want, 0)
		if !bytes.Equal(got, want) {
			t.Fatal("stream mismatch")
		}
		if m, err := s.Read(make([]byte, 10)); m != 0 || err != io.EOF {
			t.Fatalf("Read after EOF: %d, %v", m, err)
		}
	}
}

func TestCloseWritePendingRead(t *testing.T) {
	s := newSpool(t, Options{})
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.CloseWrite()
	select {
	case err := <-done:
		if err != io.EOF {
			t.Fatalf("Read: %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("CloseWrite did not wake Read")
	}
}

func TestCloseWakesBlockedRead(t *testing.T) {
	dir := t.TempDir()
	s := newSpool(t, Options{Dir: dir, MemLimit: 64 << 10, SegmentSize: 64 << 10})
	w, r := &writer{s: s}, &reader{s: s}
	w.write(t, 500<<10)
	r.read(t, 500<<10) // drained: the next Read blocks
	w.write(t, 300<<10)
	r.read(t, 64<<10)

	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = s.Read(make([]byte, 4096))
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Read returned early: %v", err)
	default:
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake Read")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left after Close: %v", ents)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if st := s.Stats(); st.InMemory != 0 || st.OnDisk != 0 || st.Segments != 0 {
		t.Errorf("stats after Close %+v", st)
	}
}

func TestCloseRemovesSpilledFiles(t *testing.T) {
	dir := t.TempDir()
	s := newSpool(t, Options{Dir: dir, MemLimit: 64 << 10, SegmentSize: 64 << 10})
	w := &writer{s: s}
	w.write(t, 1<<20)
	if n := len(segFiles(t, dir)); n != 15 {
		t.Fatalf("%d segment files, want 15", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left after Close: %v", ents)
	}
}

// TestCloseConcurrent closes the spool while both sides are busy.
func TestCloseConcurrent(t *testing.T) {
	for i := range 20 {
		dir := t.TempDir()
		s := newSpool(t, Options{Dir: dir, MemLimit: 64 << 10, SegmentSize: 128 << 10})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			b := make([]byte, 20000)
			for {
				if _, err := s.Write(b); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Write: %v", err)
					}
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			b := make([]byte, 1+i*3000)
			for {
				if _, err := s.Read(b); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Read: %v", err)
					}
					return
				}
				if i%2 == 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		}()
		time.Sleep(time.Duration(1+i) * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("files left after Close: %v", ents)
		}
	}
}

func TestMaxDiskFull(t *testing.T) {
	const k64 = 64 << 10
	s := newSpool(t, Options{MemLimit: k64, SegmentSize: k64, MaxDisk: 4 * k64})
	w, r := &writer{s: s}, &reader{s: s}
	w.write(t, k64)   // memory
	w.write(t, 4*k64) // disk, up to MaxDisk
	full := func() {
		t.Helper()
		written := s.Stats().Written
		if n, err := s.Write(make([]byte, 1)); n != 0 || !errors.Is(err, ErrFull) {
			t.Fatalf("Write past MaxDisk: %d, %v", n, err)
		}
		if s.Stats().Written != written {
			t.Fatal("ErrFull accepted bytes")
		}
	}
	full()
	r.read(t, k64) // memory: frees no disk
	full()
	r.read(t, k64/2) // the whole first segment is pulled into the read-ahead buffer and deleted
	if st := s.Stats(); st.Segments != 3 || st.OnDisk != 3*k64+k64/2 {
		t.Fatalf("stats %+v", st)
	}
	if n, err := s.Write(make([]byte, k64+1)); n != 0 || !errors.Is(err, ErrFull) {
		t.Fatalf("Write past MaxDisk is all-or-nothing: %d, %v", n, err)
	}
	w.write(t, k64)
	full()
	r.read(t, int(w.off-r.off))
	if st := s.Stats(); st.Segments != 0 || st.OnDisk != 0 {
		t.Fatalf("stats %+v", st)
	}
	w.write(t, 3*k64) // memory, then 2 segments
	r.read(t, 3*k64)
}

func TestLeftoversRemoved(t *testing.T) {
	dir := t.TempDir()
	// A live spool sharing the directory, spilled to disk.
	live := newSpool(t, Options{Dir: dir, MemLimit: 64 << 10, SegmentSize: 64 << 10})
	lw, lr := &writer{s: live}, &reader{s: live}
	lw.write(t, 300<<10)
	liveFiles := segFiles(t, dir)
	if len(liveFiles) != 4 {
		t.Fatalf("live spool files %v", liveFiles)
	}

	// Leftovers of a crashed run: an unlocked lock file with its segments,
	// and segments whose lock file is gone. Plus files that are not ours.
	leftovers := []string{
		"ferry-spool-00000000deadbeef.lock",
		"ferry-spool-00000000deadbeef-00000001.seg",
		"ferry-spool-00000000deadbeef-00000002.seg",
		"ferry-spool-0123456789abcdef-00000007.seg",
	}
	others := []string{"keep.txt", "ferry-spool-notours.seg", "ferry-spool-0123456789abcdef-x.seg"}
	for _, name := range slices.Concat(leftovers, others) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := newSpool(t, Options{Dir: dir})
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("leftover %s not removed (%v)", name, err)
		}
	}
	for _, name := range others {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("unrelated %s: %v", name, err)
		}
	}
	for _, p := range liveFiles {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("live spool's segment removed: %v", err)
		}
	}
	lr.read(t, 300<<10) // the live spool still has its data
	s.Close()
	live.Close()
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(others) {
		t.Errorf("after Close: %v", ents)
	}
}

// TestConsumedSegmentsDeleted checks that each segment file disappears as
// soon as the reader has consumed it.
func TestConsumedSegmentsDeleted(t *testing.T) {
	const k64 = 64 << 10
	for _, readSize := range []int{k64, 4 << 10, 1000} { // direct reads; through the read-ahead buffer
		dir := t.TempDir()
		s := newSpool(t, Options{Dir: dir, MemLimit: k64, SegmentSize: k64})
		w, r := &writer{s: s}, &reader{s: s}
		w.write(t, 11*k64)
		if n := len(segFiles(t, dir)); n != 10 {
			t.Fatalf("%d segment files, want 10", n)
		}
		prev := 10
		for r.off < w.off {
			r.read(t, int(min(int64(readSize), w.off-r.off)))
			files := len(segFiles(t, dir))
			if st := s.Stats(); st.Segments != files {
				t.Fatalf("Stats.Segments %d, files %d", st.Segments, files)
			}
			// Segments not yet fully delivered to the reader.
			undelivered := int((w.off - max(r.off, k64) + k64 - 1) / k64)
			if files > undelivered || files > prev {
				t.Fatalf("read %d: %d files, %d segments undelivered (before %d)", r.off, files, undelivered, prev)
			}
			if readSize == k64 && files != undelivered {
				t.Fatalf("read %d: %d files, want %d", r.off, files, undelivered)
			}
			prev = files
		}
		if prev != 0 {
			t.Fatalf("%d files left", prev)
		}
		s.Close()
	}
}

func TestDiskErrorWrapped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := newSpool(t, Options{Dir: dir, MemLimit: 64 << 10})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100<<10)
	n, err := s.Write(p)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "spool: create segment "+dir) {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if n != 64<<10 {
		t.Errorf("Write accepted %d, want %d (the memory part)", n, 64<<10)
	}
	if _, err2 := s.Read(p); err2 != err {
		t.Errorf("Read: %v, want the write failure", err2)
	}
	if _, err2 := s.Write(p); err2 != err {
		t.Errorf("Write: %v, want the sticky failure", err2)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestNewOptions(t *testing.T) {
	if _, err := New(Options{Dir: t.TempDir(), MemLimit: -1}); err == nil {
		t.Error("negative MemLimit accepted")
	}
	s := newSpool(t, Options{Dir: filepath.Join(t.TempDir(), "a", "b")})
	if s.memLimit != DefaultMemLimit || s.segmentSize != DefaultSegmentSize || s.ioBufSize != maxIOBufSize || s.chunkSize != chunkSize {
		t.Errorf("defaults: %d %d %d %d", s.memLimit, s.segmentSize, s.ioBufSize, s.chunkSize)
	}
	tiny := newSpool(t, Options{MemLimit: 100, SegmentSize: 1000})
	w, r := &writer{s: tiny}, &reader{s: tiny}
	for range 50 {
		w.write(t, 77)
	}
	r.read(t, 50*77)
}

func TestParseName(t *testing.T) {
	for name, want := range map[string]bool{
		"ferry-spool-0123456789abcdef.lock":         true,
		"ferry-spool-0123456789abcdef-00000001.seg": true,
		"ferry-spool-0123456789abcdef-1.seg":        true,
		"ferry-spool-0123456789ABCDEF.lock":         false,
		"ferry-spool-0123456789abcdef-.seg":         false,
		"ferry-spool-0123456789abcdef.seg":          false,
		"ferry-spool-0123456789abcde.lock":          false,
		"ferry-spool-0123456789abcdef-01.seg.tmp":   false,
		"other": false,
	} {
		if _, _, ok := parseName(name); ok != want {
			t.Errorf("parseName(%q) ok = %v", name, ok)
		}
	}
}

// TestBufferLends: a Write of what the producer read into the room Buffer
// lent appends it without a copy, also while the consumer drains the chunk
// being filled; with the stream on disk or memory full there is no room to
// lend, and a Write of anything else ends the loan.
func TestBufferLends(t *testing.T) {
	s := newSpool(t, Options{MemLimit: 1 << 20, SegmentSize: 1 << 20})
	w := &writer{s: s}
	r := &reader{s: s}

	lent := s.Buffer(1000)
	if len(lent) != 1000 {
		t.Fatalf("lent %d bytes, want 1000", len(lent))
	}
	fillStream(lent[:600], 0)
	if n, err := s.Write(lent[:600]); n != 600 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	w.off = 600
	if s.inPlace != 600 {
		t.Fatalf("%d bytes in place, want 600", s.inPlace)
	}
	next := s.Buffer(500)
	if &next[0] != &lent[600] {
		t.Fatal("the next loan is not where the last one ended")
	}
	r.read(t, 600) // the consumer empties the chunk the loan is in
	r2 := make(chan error, 1)
	go func() { // waits for bytes while the producer fills the loan
		b := make([]byte, 500)
		_, err := io.ReadFull(s, b)
		if err == nil && !bytes.Equal(b, streamRange(600, 500)) {
			err = errors.New("stream mismatch")
		}
		r2 <- err
	}()
	fillStream(next, 600)
	if _, err := s.Write(next); err != nil {
		t.Fatal(err)
	}
	if err := <-r2; err != nil {
		t.Fatal(err)
	}
	w.off, r.off = 1100, 1100

	// A loan the producer does not use ends with its next Write.
	s.Buffer(4096)
	w.write(t, 100)
	if s.inPlace != 1100 {
		t.Fatalf("%d bytes in place, want 1100 (a copied write counted)", s.inPlace)
	}

	// Memory full: nothing to lend; the rest spills.
	w.write(t, 1<<20-100)
	if b := s.Buffer(4096); b != nil {
		t.Fatalf("lent %d bytes with memory full", len(b))
	}
	w.write(t, 5000)
	r.read(t, 1<<20)
	if b := s.Buffer(4096); b != nil {
		t.Fatalf("lent %d bytes with the stream on disk", len(b))
	}
	r.read(t, int(w.off-r.off))
	if st := s.Stats(); st.Written != w.off || st.Read != w.off || st.InMemory+st.OnDisk != 0 {
		t.Fatalf("stats %+v after the drain", st)
	}
	if b := s.Buffer(4096); len(b) != 4096 {
		t.Fatalf("lent %d bytes after the drain, want 4096", len(b))
	}
}

func streamRange(off int64, n int) []byte {
	b := make([]byte, n)
	fillStream(b, off)
	return b
}
