package reader

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/resp"
)

// The scan reader presents what it reads to the job exactly as the PSYNC
// reader does: a pass over the keyspace becomes an RDB snapshot built from
// DUMP payloads (a DUMP payload is the RDB encoding of the value, followed by
// the RDB version and a CRC), and the live phase becomes a command stream of
// RESTORE … REPLACE ABSTTL and DEL. The applier, filters, db_map, writers and
// fence then treat it like any other source.

const (
	rdbOpSelectDB     = 0xFE
	rdbOpExpireTimeMs = 0xFC
	rdbOpAux          = 0xFA
	rdbOpEOF          = 0xFF
	// dumpFooter is the RDB version (2 bytes) and CRC64 (8 bytes) that end a
	// DUMP payload.
	dumpFooter = 10
	// chunk is the size of the frames the scan reader writes (well below
	// maxFrame).
	chunk = 256 << 10
)

// appendRDBLen appends an RDB length encoding.
func appendRDBLen(dst []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(dst, byte(n))
	case n < 1<<14:
		return append(dst, byte(n>>8)|0x40, byte(n))
	case n <= 0xFFFFFFFF:
		dst = append(dst, 0x80)
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	dst = append(dst, 0x81)
	return binary.BigEndian.AppendUint64(dst, n)
}

// dumpVersion is the RDB version a DUMP payload was written with.
func dumpVersion(payload []byte) (int, error) {
	if len(payload) < dumpFooter+1 {
		return 0, fmt.Errorf("DUMP payload of %d bytes is too short", len(payload))
	}
	return int(binary.LittleEndian.Uint16(payload[len(payload)-dumpFooter:])), nil
}

// frameOut writes frames of one kind in chunks to the spool.
type frameOut struct {
	out io.Writer
	buf []byte
}

func (f *frameOut) write(kind byte, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), chunk)
		f.buf = appendFrameHeader(f.buf[:0], kind, n)
		f.buf = append(f.buf, data[:n]...)
		if _, err := f.out.Write(f.buf); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		data = data[n:]
	}
	return nil
}

func (f *frameOut) stream(data []byte) error {
	now := uint64(time.Now().UnixNano())
	for len(data) > 0 {
		n := min(len(data), chunk)
		f.buf = appendFrameHeader(f.buf[:0], frameStream, 8+n)
		f.buf = binary.LittleEndian.AppendUint64(f.buf, now)
		f.buf = append(f.buf, data[:n]...)
		if _, err := f.out.Write(f.buf); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		data = data[n:]
	}
	return nil
}

func (f *frameOut) control(kind byte, payload []byte) error {
	f.buf = appendFrameHeader(f.buf[:0], kind, len(payload))
	f.buf = append(f.buf, payload...)
	if _, err := f.out.Write(f.buf); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// rdbBuilder builds the snapshot of one pass and writes it out in frames.
type rdbBuilder struct {
	f       *frameOut
	buf     []byte
	written int64
	header  bool
	db      int
}

func newRDBBuilder(f *frameOut) *rdbBuilder { return &rdbBuilder{f: f, db: -1} }

// functions adds the function libraries of a FUNCTION DUMP payload (their
// RDB records followed by the footer), which must come before any key.
func (b *rdbBuilder) functions(payload []byte) error {
	v, err := dumpVersion(payload)
	if err != nil {
		return fmt.Errorf("FUNCTION DUMP: %w", err)
	}
	if !b.header {
		b.buf = fmt.Appendf(b.buf, "REDIS%04d", v)
		b.header = true
	}
	b.buf = append(b.buf, payload[:len(payload)-dumpFooter]...)
	return nil
}

// key adds one key: its db, its absolute expiry in unix ms (0: none) and its
// DUMP payload.
func (b *rdbBuilder) key(db int, key []byte, expireMs int64, payload []byte) error {
	v, err := dumpVersion(payload)
	if err != nil {
		return fmt.Errorf("db %d key %q: %w", db, clipKey(key), err)
	}
	if !b.header {
		b.buf = fmt.Appendf(b.buf, "REDIS%04d", v)
		b.header = true
	}
	if db != b.db {
		b.buf = append(b.buf, rdbOpSelectDB)
		b.buf = appendRDBLen(b.buf, uint64(db))
		b.db = db
	}
	if expireMs > 0 {
		b.buf = append(b.buf, rdbOpExpireTimeMs)
		b.buf = binary.LittleEndian.AppendUint64(b.buf, uint64(expireMs))
	}
	b.buf = append(b.buf, payload[0])
	b.buf = appendRDBLen(b.buf, uint64(len(key)))
	b.buf = append(b.buf, key...)
	b.buf = append(b.buf, payload[1:len(payload)-dumpFooter]...)
	if len(b.buf) >= chunk {
		return b.flush()
	}
	return nil
}

// keep names a key of db that the snapshot does not hold but the stream
// after it writes (a big value, read in pieces): an AUX field rdb.AuxKeep,
// so that the sweep after the snapshot keeps the key the target holds
// meanwhile. It comes after the snapshot's keys.
func (b *rdbBuilder) keep(db int, key []byte) error {
	if !b.header {
		b.buf = fmt.Appendf(b.buf, "REDIS%04d", 9)
		b.header = true
	}
	if db != b.db {
		b.buf = append(b.buf, rdbOpSelectDB)
		b.buf = appendRDBLen(b.buf, uint64(db))
		b.db = db
	}
	b.buf = append(b.buf, rdbOpAux)
	b.buf = appendRDBLen(b.buf, uint64(len(rdb.AuxKeep)))
	b.buf = append(b.buf, rdb.AuxKeep...)
	b.buf = appendRDBLen(b.buf, uint64(len(key)))
	b.buf = append(b.buf, key...)
	if len(b.buf) >= chunk {
		return b.flush()
	}
	return nil
}

func (b *rdbBuilder) flush() error {
	if len(b.buf) == 0 {
		return nil
	}
	err := b.f.write(frameRDB, b.buf)
	b.written += int64(len(b.buf))
	b.buf = b.buf[:0]
	return err
}

// end closes the RDB (EOF opcode and a zero checksum, which RDB readers
// take as "not computed") and marks the end of the snapshot.
func (b *rdbBuilder) end() error {
	if !b.header {
		// No key at all: any version the reader knows will do.
		b.buf = fmt.Appendf(b.buf, "REDIS%04d", 9)
		b.header = true
	}
	b.buf = append(b.buf, rdbOpEOF)
	b.buf = binary.LittleEndian.AppendUint64(b.buf, 0)
	if err := b.flush(); err != nil {
		return err
	}
	return b.f.control(frameRDBEnd, nil)
}

var (
	bRestoreCmd = []byte("RESTORE")
	bReplaceArg = []byte("REPLACE")
	bAbsTTLArg  = []byte("ABSTTL")
	bDelCmd     = []byte("DEL")
	bSelectCmd  = []byte("SELECT")
)

// appendRestoreCmd appends RESTORE key expireMs payload REPLACE ABSTTL.
func appendRestoreCmd(dst, key []byte, expireMs int64, payload []byte) []byte {
	dst = resp.AppendArrayHeader(dst, 6)
	dst = resp.AppendBulk(dst, bRestoreCmd)
	dst = resp.AppendBulk(dst, key)
	dst = resp.AppendBulkInt(dst, max(expireMs, 0))
	dst = resp.AppendBulk(dst, payload)
	dst = resp.AppendBulk(dst, bReplaceArg)
	return resp.AppendBulk(dst, bAbsTTLArg)
}

func appendSelectCmd(dst []byte, db int) []byte {
	dst = resp.AppendArrayHeader(dst, 2)
	dst = resp.AppendBulk(dst, bSelectCmd)
	return resp.AppendBulkInt(dst, int64(db))
}

func appendDelCmd(dst, key []byte) []byte {
	dst = resp.AppendArrayHeader(dst, 2)
	dst = resp.AppendBulk(dst, bDelCmd)
	return resp.AppendBulk(dst, key)
}

func clipKey(b []byte) string {
	if len(b) > 100 {
		return string(b[:100]) + "…"
	}
	return string(b)
}
