package reader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

func streamFrame(at time.Time, data string) []byte {
	b := appendFrameHeader(nil, frameStream, 8+len(data))
	b = binary.LittleEndian.AppendUint64(b, uint64(at.UnixNano()))
	return append(b, data...)
}

func fullSyncFrame(replid string, offset, rdbSize int64) []byte {
	b := appendFrameHeader(nil, frameFullSync, 56)
	return binaryAppendInt64(appendPos(b, replid, offset), rdbSize)
}

func rdbFrame(data string) []byte {
	return append(appendFrameHeader(nil, frameRDB, len(data)), data...)
}

func TestFrames(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var spool bytes.Buffer
	spool.Write(fullSyncFrame("id1", 100, -1))
	spool.Write(rdbFrame("rdb"))
	spool.Write(appendFrameHeader(nil, frameRDBEnd, 0))
	spool.Write(streamFrame(t0, "abc"))
	// A partial resync in the middle of the stream: it does not interrupt
	// it, but switches the id (and here rewinds the offset).
	spool.Write(appendFrameHeader(nil, frameContinue, 48))
	spool.Write(appendPos(nil, "id2", 90))
	spool.Write(streamFrame(t0.Add(time.Second), "def"))
	// A full resync interrupts it.
	spool.Write(fullSyncFrame("id3", 500, 7))

	f := NewFrames(&spool, nil, nil)
	ev, err := f.Next()
	if err != nil || ev.Kind != FullSync || ev.ReplID != "id1" || ev.Offset != 100 || ev.RDBSize != -1 {
		t.Fatalf("first event %+v %v", ev, err)
	}
	rdb, _ := io.ReadAll(f.RDB())
	if string(rdb) != "rdb" {
		t.Fatalf("rdb %q", rdb)
	}
	if ev, err = f.Next(); err != nil || ev.Kind != Stream {
		t.Fatalf("%+v %v", ev, err)
	}
	s := f.Stream()
	buf := make([]byte, 10)
	var got []byte
	for {
		n, err := s.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, ErrEndOfData) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "abcdef" {
		t.Fatalf("stream %q", got)
	}
	if at := f.TimeAt(2); !at.Equal(t0) {
		t.Errorf("byte 2 received at %v", at)
	}
	if sw, ok := f.SwitchAt(3); !ok || sw.ReplID != "id2" || sw.Offset != 90 || sw.Pos != 3 {
		t.Errorf("switch %+v %v", sw, ok)
	}
	if at := f.TimeAt(5); !at.Equal(t0.Add(time.Second)) {
		t.Errorf("byte 5 received at %v", at)
	}
	if ev, err = f.Next(); err != nil || ev.Kind != FullSync || ev.ReplID != "id3" || ev.RDBSize != 7 {
		t.Fatalf("%+v %v", ev, err)
	}
}

func TestFramesRejectCorruption(t *testing.T) {
	f := NewFrames(bytes.NewReader(appendFrameHeader(nil, 99, 1)), nil, nil)
	if _, err := f.Next(); err == nil {
		t.Error("unknown frame kind accepted")
	}
	f = NewFrames(bytes.NewReader(appendFrameHeader(nil, frameStream, 1<<30)), nil, nil)
	if _, err := f.Next(); err == nil {
		t.Error("oversized frame accepted")
	}
}

// An RDB the consumer stopped reading part-way (the link dropped, a new full
// resync follows) is skipped to the next event.
func TestFramesSkipUnreadRDB(t *testing.T) {
	var spool bytes.Buffer
	spool.Write(fullSyncFrame("id1", 100, -1))
	spool.Write(rdbFrame("abcdef"))
	spool.Write(rdbFrame("ghi"))
	spool.Write(fullSyncFrame("id2", 200, 3))
	spool.Write(rdbFrame("jkl"))
	spool.Write(appendFrameHeader(nil, frameRDBEnd, 0))

	f := NewFrames(&spool, nil, nil)
	if ev, err := f.Next(); err != nil || ev.ReplID != "id1" {
		t.Fatalf("first event %+v %v", ev, err)
	}
	two := make([]byte, 2)
	if _, err := io.ReadFull(f.RDB(), two); err != nil || string(two) != "ab" {
		t.Fatalf("read %q %v", two, err)
	}
	ev, err := f.Next()
	if err != nil || ev.Kind != FullSync || ev.ReplID != "id2" || ev.RDBSize != 3 {
		t.Fatalf("after the unread rest: %+v %v", ev, err)
	}
	if rdb, err := io.ReadAll(f.RDB()); err != nil || string(rdb) != "jkl" {
		t.Fatalf("second rdb %q %v", rdb, err)
	}
}

// BenchmarkFramesRDB reads a snapshot's frames as the RDB parser does: into
// the free tail of a 1 MiB buffer that it empties when full.
func BenchmarkFramesRDB(b *testing.B) {
	const frame, frames = 256 << 10, 64
	data := bytes.Repeat([]byte("0123456789abcdef"), frame/16)
	var in []byte
	for range frames {
		in = appendFrameHeader(in, frameRDB, frame)
		in = append(in, data...)
	}
	in = appendFrameHeader(in, frameRDBEnd, 0)
	buf := make([]byte, 1<<20)
	b.SetBytes(frame * frames)
	b.ReportAllocs()
	for b.Loop() {
		f := NewFrames(bytes.NewReader(in), nil, nil)
		f.hdr[0], f.peeked = frameRDB, false
		r := f.RDB()
		w := 0
		for {
			n, err := r.Read(buf[w:])
			if w += n; w == len(buf) {
				w = 0
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
