package reader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The PSYNC reader drains the source's socket into a spool as a sequence of
// frames, so that events that are not bytes of the replication stream (a new
// full resync, a partial resync with a new replication id) travel in order
// with the data. A frame is a 1-byte kind, a 4-byte little-endian length and
// the payload.
const (
	frameFullSync = 1 // replid(40) | offset int64 | rdb size int64 (-1: diskless, size unknown)
	frameRDB      = 2 // RDB bytes
	frameRDBEnd   = 3 // the RDB is complete
	frameContinue = 4 // replid(40) | offset int64: the stream continues after offset
	frameStream   = 5 // receive time int64 (unix ns) | bytes of the command stream
)

const frameHeader = 5

// maxFrame bounds a frame's payload (and what a corrupt spool could make the
// consumer allocate).
const maxFrame = 1 << 20

func appendFrameHeader(dst []byte, kind byte, n int) []byte {
	var h [frameHeader]byte
	h[0] = kind
	binary.LittleEndian.PutUint32(h[1:], uint32(n))
	return append(dst, h[:]...)
}

func appendPos(dst []byte, replid string, offset int64) []byte {
	var id [40]byte
	copy(id[:], replid)
	dst = append(dst, id[:]...)
	return binary.LittleEndian.AppendUint64(dst, uint64(offset))
}

// EventKind is what the consumer of a spool meets next.
type EventKind int

const (
	// FullSync: a snapshot follows; read it with RDB() until io.EOF.
	FullSync EventKind = iota + 1
	// Continue: a partial resync; the stream goes on where it was, the
	// replication id may have changed (the source failed over).
	Continue
	// Stream: bytes of the command stream follow; read them with Stream().
	Stream
)

// Event is one item from the spool.
type Event struct {
	Kind    EventKind
	ReplID  string
	Offset  int64 // FullSync: the offset the stream starts after; Continue: the last offset before the new link's bytes
	RDBSize int64 // FullSync: the RDB's length, -1 when the source streams it diskless
}

// Frames reads the frames a reader (PSync or Scan) wrote to a spool. It
// reads the spool unbuffered: a frame's data goes from the spool's memory
// straight into the consumer's buffer (the RDB parser's, the command
// stream's), where a buffer in between copied every byte of a sync once more
// (3 % of ferry's CPU in a cluster full sync). The spool is itself a buffer;
// a header costs one more locked read of 5 bytes per frame of up to 256 KiB.
type Frames struct {
	r       io.Reader // the spool, calling onIdle before a read that would block
	left    int       // payload bytes left in the current data frame
	peeked  bool
	hdr     [frameHeader]byte
	onIdle  func()
	pending func() int64

	delivered int64 // stream bytes handed out since Stream()
	switches  []Switch
	times     []stamp // receive times of stream frames not yet passed
	lastTime  time.Time
}

// NewFrames reads frames from r. pending reports how many bytes are
// available without blocking (the spool's backlog); before a read that would
// block, onIdle is called, so the consumer can flush what it batched.
func NewFrames(r io.Reader, pending func() int64, onIdle func()) *Frames {
	f := &Frames{pending: pending, onIdle: onIdle}
	f.r = readerFunc(f.readSpool(r))
	return f
}

type readerFunc func([]byte) (int, error)

func (fn readerFunc) Read(p []byte) (int, error) { return fn(p) }

func (f *Frames) readSpool(r io.Reader) func([]byte) (int, error) {
	return func(p []byte) (int, error) {
		if f.onIdle != nil && f.pending != nil && f.pending() == 0 {
			f.onIdle()
		}
		return r.Read(p)
	}
}

// ErrEndOfData is returned by RDB() and Stream() readers when the current run
// of data frames ends; call Next for the event that follows.
var ErrEndOfData = errors.New("end of data frames")

func (f *Frames) header() error {
	if f.peeked {
		return nil
	}
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(f.hdr[1:])
	if n > maxFrame {
		return fmt.Errorf("spool: corrupt frame (kind %d, %d bytes)", f.hdr[0], n)
	}
	f.peeked = true
	return nil
}

// Next returns the next event. Data left unread in the current run of data
// frames is skipped (a full resync interrupts a partial command).
func (f *Frames) Next() (Event, error) {
	for {
		if f.left > 0 {
			if _, err := io.CopyN(io.Discard, f.r, int64(f.left)); err != nil {
				return Event{}, err
			}
			f.left = 0
		}
		if err := f.header(); err != nil {
			return Event{}, err
		}
		kind, n := f.hdr[0], int(binary.LittleEndian.Uint32(f.hdr[1:]))
		switch kind {
		case frameStream:
			return Event{Kind: Stream}, nil // left peeked for Stream()
		case frameRDB, frameRDBEnd:
			// An RDB the consumer did not read (it was interrupted): skip.
			f.peeked = false
			f.left = n
			continue
		case frameFullSync, frameContinue:
			f.peeked = false
			buf := make([]byte, n)
			if _, err := io.ReadFull(f.r, buf); err != nil {
				return Event{}, err
			}
			if len(buf) < 48 {
				return Event{}, fmt.Errorf("spool: short position frame")
			}
			ev := Event{ReplID: trimID(buf[:40]), Offset: int64(binary.LittleEndian.Uint64(buf[40:48]))}
			if kind == frameFullSync {
				if len(buf) < 56 {
					return Event{}, fmt.Errorf("spool: short full-sync frame")
				}
				ev.Kind = FullSync
				ev.RDBSize = int64(binary.LittleEndian.Uint64(buf[48:56]))
			} else {
				ev.Kind = Continue
			}
			return ev, nil
		default:
			return Event{}, fmt.Errorf("spool: unknown frame kind %d", kind)
		}
	}
}

func trimID(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// RDB returns a reader over the snapshot that follows a FullSync event. It
// returns io.EOF at the end of the RDB, ErrEndOfData if the transfer was cut
// off (the source link dropped mid-snapshot; a new FullSync follows).
func (f *Frames) RDB() io.Reader { return readerFunc(f.readData(frameRDB)) }

// Stream returns a reader over the command stream. A partial resync does not
// interrupt it — PSYNC continues the byte stream exactly, even in the middle
// of a command — but may change the replication id from some byte on (see
// SwitchAt). It returns ErrEndOfData when a full resync comes next.
func (f *Frames) Stream() io.Reader {
	f.delivered = 0
	f.switches = f.switches[:0]
	f.times = f.times[:0]
	return readerFunc(f.readData(frameStream))
}

type stamp struct {
	pos int64
	at  time.Time
}

// TimeAt is when ferry received the stream byte just before position pos
// (a command's receive time, given its end): ferry's readers take every
// shard's stream as it comes, so this orders commands of different shards
// as they happened, to within the network's delay.
func (f *Frames) TimeAt(pos int64) time.Time {
	for len(f.times) > 0 && f.times[0].pos < pos {
		f.lastTime = f.times[0].at
		f.times = f.times[1:]
	}
	return f.lastTime
}

// Switch is where a partial resync continued the stream: from stream
// position Pos (bytes since Stream was called) on, the bytes belong to
// ReplID and follow source offset Offset. A source that failed over
// continues its old master's offsets under a new id; after a rewind to a
// branch point the offset goes back.
type Switch struct {
	Pos    int64
	ReplID string
	Offset int64
}

// SwitchAt returns the last switch at or before stream position pos that was
// not returned yet.
func (f *Frames) SwitchAt(pos int64) (Switch, bool) {
	var sw Switch
	found := false
	for len(f.switches) > 0 && f.switches[0].Pos <= pos {
		sw, found = f.switches[0], true
		f.switches = f.switches[1:]
	}
	return sw, found
}

func (f *Frames) readData(want byte) func([]byte) (int, error) {
	return func(p []byte) (int, error) {
		for f.left == 0 {
			if err := f.header(); err != nil {
				return 0, err
			}
			kind, n := f.hdr[0], int(binary.LittleEndian.Uint32(f.hdr[1:]))
			switch {
			case want == frameRDB && kind == frameRDBEnd:
				f.peeked = false
				return 0, io.EOF
			case want == frameStream && kind == frameContinue:
				f.peeked = false
				buf := make([]byte, n)
				if _, err := io.ReadFull(f.r, buf); err != nil {
					return 0, err
				}
				if len(buf) >= 48 {
					f.switches = append(f.switches, Switch{Pos: f.delivered, ReplID: trimID(buf[:40]), Offset: int64(binary.LittleEndian.Uint64(buf[40:48]))})
				}
				continue
			case kind != want:
				return 0, ErrEndOfData // left peeked for Next
			}
			f.peeked = false
			f.left = n
			if kind == frameStream {
				var ts [8]byte
				if _, err := io.ReadFull(f.r, ts[:]); err != nil {
					return 0, err
				}
				f.left -= 8
				f.times = append(f.times, stamp{pos: f.delivered, at: time.Unix(0, int64(binary.LittleEndian.Uint64(ts[:])))})
			}
		}
		if len(p) > f.left {
			p = p[:f.left]
		}
		n, err := f.r.Read(p)
		f.left -= n
		if want == frameStream {
			f.delivered += int64(n)
		}
		return n, err
	}
}
