package rdb

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// seedInputs are small real and hand-built RDBs. testdata/redis-7.0-small.rdb
// is a SAVE of redis-server 7.0.15 holding one key of every 7.0 encoding
// (string/int/LZF, listpack and plain-node lists, intset/hashtable sets,
// listpack/skiplist zsets, listpack/hashtable hashes, a stream with a deleted
// entry, a group and a PEL), a TTL and a function library.
func seedInputs(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{"v12": buildV12(t)}
	if b, err := os.ReadFile("testdata/redis-7.0-small.rdb"); err == nil {
		seeds["redis-7.0-small"] = b
	} else {
		t.Fatal(err)
	}
	for _, n := range []string{"stream_listoacks_3", "stream_listpacks_2", "listpack", "zipmap_that_compresses_easily",
		"ziplist_with_integers", "intset_64", "quicklist", "set_listpack", "rdb_version_8_with_64b_length_and_scores",
		"hash_as_ziplist", "keys_with_expiry", "non_ascii_values", "memory"} {
		if b, err := os.ReadFile(filepath.Join(fixtureDir, n+".rdb")); err == nil && len(b) < 8<<10 {
			seeds[n] = b
		}
	}
	return seeds
}

var fuzzNow = func() time.Time { return time.UnixMilli(1800000000000) }

// consume frames data completely, exercising every record API, and returns
// the first error. It fails the test on a broken invariant.
func consume(t testing.TB, data []byte, opt Options) error {
	r := NewReader(bytes.NewReader(data), opt)
	defer r.Close()
	for i := 0; ; i++ {
		rec, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error is %T, not *FormatError: %v", err, err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Fatalf("error offset %d outside input of %d bytes: %v", fe.Offset, len(data), err)
			}
			return err
		}
		if rec.Kind == KindKey || rec.Kind == KindModuleAux {
			if rec.ValueOffset+rec.Value.Len() > int64(len(data)) {
				t.Fatalf("value beyond input")
			}
		}
		if rec.Kind == KindKey {
			p, err := rec.AppendRestorePayload(nil, MaxVersion)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(p)) != rec.RestorePayloadLen(MaxVersion) {
				t.Fatalf("RestorePayloadLen %d, payload %d bytes", rec.RestorePayloadLen(MaxVersion), len(p))
			}
			pr, err := ParseDump(rec.DB, rec.Key, p, rec.ExpireMs)
			if err != nil {
				t.Fatalf("a framed value does not parse back as DUMP payload: %v", err)
			}
			pr.Release()
		}
		err = Rewrite(rec, RewriteOptions{MaxElems: 3, MaxBytes: 64, Now: fuzzNow}, func(args [][]byte) error {
			if len(args) < 2 {
				t.Fatalf("command with %d args", len(args))
			}
			return nil
		})
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) && !errors.Is(err, ErrModuleValue) {
				t.Fatalf("Rewrite error is %T: %v", err, err)
			}
		}
		rec.Release()
	}
}

func TestTruncated(t *testing.T) {
	for name, data := range seedInputs(t) {
		t.Run(name, func(t *testing.T) {
			if err := consume(t, data, Options{}); err != nil {
				t.Fatalf("intact input: %v", err)
			}
			for n := 0; n < len(data); n++ {
				err := consume(t, data[:n], Options{MemLimit: 64, SpillDir: t.TempDir()})
				if err == nil {
					t.Fatalf("truncated at %d of %d: no error", n, len(data))
				}
				var fe *FormatError
				errors.As(err, &fe)
				if n > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("truncated at %d: %v", n, err)
				}
				if fe.Offset > int64(n) {
					t.Fatalf("truncated at %d: error offset %d", n, fe.Offset)
				}
			}
		})
	}
}

func TestFlippedBytes(t *testing.T) {
	for name, data := range seedInputs(t) {
		t.Run(name, func(t *testing.T) {
			buf := make([]byte, len(data))
			for i := range data {
				for _, mask := range []byte{0x01, 0x80, 0xff} {
					copy(buf, data)
					buf[i] ^= mask
					err := consume(t, buf, Options{})
					// a header turned into version < 5 has no CRC to check
					crcChecked := string(buf[:5]) != "REDIS" || string(buf[5:8]) != "000" || buf[8] >= '5'
					if err == nil && crcChecked {
						t.Fatalf("byte %d ^ %#x: no error", i, mask)
					}
				}
			}
		})
	}
}

func TestBadCRC(t *testing.T) {
	data := buildV12(t)
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 0x40
	err := consume(t, bad, Options{})
	var fe *FormatError
	if !errors.As(err, &fe) || !errors.Is(err, ErrChecksum) || fe.Offset != int64(len(data)-8) {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(err.Error(), "stored") || !strings.Contains(err.Error(), "computed") {
		t.Errorf("message %q", err)
	}
	// a stored CRC of 0 means checksums were disabled
	zero := append([]byte(nil), data...)
	copy(zero[len(zero)-8:], make([]byte, 8))
	if err := consume(t, zero, Options{}); err != nil {
		t.Errorf("zero CRC: %v", err)
	}
	// a flipped payload byte with the original CRC
	flip := append([]byte(nil), data...)
	flip[len(flip)-20] ^= 1
	if err := consume(t, flip, Options{}); err == nil {
		t.Errorf("flip not detected")
	}
}

// TestBuffered: bytes after the RDB stay available to the caller.
func TestBuffered(t *testing.T) {
	data := append(buildV12(t), "*1\r\n$4\r\nPING\r\n"...)
	r := NewReader(bytes.NewReader(data), Options{})
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if got := string(r.Buffered()); got != "*1\r\n$4\r\nPING\r\n" {
		t.Errorf("Buffered %q", got)
	}
	r.Close()
	if got := string(r.Buffered()); got != "*1\r\n$4\r\nPING\r\n" {
		t.Errorf("Buffered after Close %q", got)
	}
}

// TestReadError: an I/O error of the source is wrapped with the offset.
func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	data := buildV12(t)
	r := NewReader(io.MultiReader(bytes.NewReader(data[:100]), errReader{boom}), Options{})
	var err error
	for err == nil {
		var rec *Record
		rec, err = r.Next()
		rec.Release()
	}
	var fe *FormatError
	if !errors.Is(err, boom) || !errors.As(err, &fe) || fe.Offset > 100 {
		t.Fatalf("%v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestSpillCleanup: spilled payloads are released and files gone.
func TestSpillCleanup(t *testing.T) {
	dir := t.TempDir()
	e := newRDB(10)
	for i := 0; i < 3; i++ {
		e.key(TypeString, "big"+itoa(int64(i))).bstr(bytes.Repeat([]byte{byte(i)}, 100000))
	}
	r := NewReader(bytes.NewReader(e.finish()), Options{MemLimit: 1000, SpillDir: dir})
	var held []*Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !rec.Value.Spilled() {
			t.Fatal("not spilled")
		}
		b, _ := io.ReadAll(rec.Value.Open())
		if len(b) != 100005 {
			t.Fatalf("spilled value %d bytes", len(b))
		}
		held = append(held, rec)
	}
	held[0].Release()
	r.Close() // releases the others
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spill files left: %v", ents)
	}
	if n := held[1].Value.Len(); n != 0 {
		t.Errorf("payload still has %d bytes after Close", n)
	}
}

func FuzzReader(f *testing.F) {
	for _, b := range seedInputs(f) {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		consume(t, data, Options{MemLimit: 1 << 14, SpillDir: dir})
	})
}

// TestRecordsIndependent hands records to other goroutines while the Reader
// goes on (run with -race): records must not share buffers.
func TestRecordsIndependent(t *testing.T) {
	e := newRDB(10)
	for i := 0; i < 3000; i++ {
		e.key(TypeString, "k"+itoa(int64(i))).bstr(bytes.Repeat([]byte{byte(i)}, i%50+i/1000*3000))
		e.key(TypeHashListpack, "h"+itoa(int64(i))).bstr(buildLP("f", i, "g", "x"))
	}
	data := e.finish()
	// expected payloads from a sequential pass
	want := map[string][]byte{}
	frameAll(t, data, Options{}, func(rec *Record) {
		p, _ := rec.AppendRestorePayload(nil, 10)
		want[string(rec.Key)] = p
		rec.Release()
	})
	ch := make(chan *Record, 64)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rec := range ch {
				var buf bytes.Buffer
				if err := rec.WriteRestorePayload(&buf, 10); err != nil {
					errs <- err
				} else if !bytes.Equal(buf.Bytes(), want[string(rec.Key)]) {
					errs <- errors.New("payload of " + string(rec.Key) + " changed")
				}
				Rewrite(rec, RewriteOptions{}, func([][]byte) error { return nil })
				rec.Release()
			}
		}()
	}
	r := NewReader(bytes.NewReader(data), Options{MemLimit: 2000, SpillDir: t.TempDir()})
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == KindKey {
			ch <- rec
		} else {
			rec.Release()
		}
	}
	close(ch)
	wg.Wait()
	r.Close()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
