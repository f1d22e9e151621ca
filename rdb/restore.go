package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ferry-dev/ferry/internal/crc64"
)

// RestorePayloadLen returns the length of the DUMP/RESTORE payload of a key
// record: type byte + raw value + 2-byte RDB version + 8-byte CRC64.
func (rec *Record) RestorePayloadLen(version int) int64 {
	return 1 + rec.Value.Len() + 2 + 8
}

func (rec *Record) checkRestore(version int) error {
	if rec.Kind != KindKey || rec.Value == nil {
		return fmt.Errorf("rdb: %s record has no RESTORE payload", rec.Kind)
	}
	if version < 1 || version > 0xffff {
		return fmt.Errorf("rdb: RDB version %d out of range", version)
	}
	if mv := MinVersion(rec.Type); version < mv {
		return fmt.Errorf("rdb: key %s: value type %d (%s) needs RDB version >= %d, target has %d",
			quoteKey(rec.Key), rec.Type, TypeName(rec.Type), mv, version)
	}
	return nil
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// WriteRestorePayload writes the DUMP/RESTORE payload of a key record: the
// type byte, the raw value, the RDB version (2 bytes LE) and the CRC64 (8
// bytes LE) of everything before it. version is the RDB version of the
// target (see MinVersion); a target refuses payloads newer than itself.
func (rec *Record) WriteRestorePayload(w io.Writer, version int) error {
	if err := rec.checkRestore(version); err != nil {
		return err
	}
	var tb [1]byte
	tb[0] = rec.Type
	crc := crc64.Update(0, tb[:])
	if _, err := w.Write(tb[:]); err != nil {
		return err
	}
	p := rec.Value
	if p.file == nil {
		err := p.eachInMemory(func(b []byte) error {
			crc = crc64.Update(crc, b)
			_, err := w.Write(b)
			return err
		})
		if err != nil {
			return err
		}
	} else {
		bp := copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bp)
		buf := *bp
		src := p.Open()
		var n int64
		for {
			m, err := src.Read(buf)
			if m > 0 {
				n += int64(m)
				crc = crc64.Update(crc, buf[:m])
				if _, werr := w.Write(buf[:m]); werr != nil {
					return werr
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("rdb: reading spilled value: %w", err)
			}
		}
		if n != p.n {
			return fmt.Errorf("rdb: spilled value is %d bytes, expected %d", n, p.n)
		}
	}
	var foot [10]byte
	putFooter(foot[:], crc, version)
	_, err := w.Write(foot[:])
	return err
}

// putFooter writes a payload's footer into foot (10 bytes): the RDB version
// and the CRC64 of everything before it, crc being that of what precedes
// the version.
func putFooter(foot []byte, crc uint64, version int) {
	binary.LittleEndian.PutUint16(foot[:2], uint16(version))
	binary.LittleEndian.PutUint64(foot[2:10], crc64.Update(crc, foot[:2]))
}

// AppendRestorePayload appends the RESTORE payload to dst (see
// WriteRestorePayload).
func (rec *Record) AppendRestorePayload(dst []byte, version int) ([]byte, error) {
	if err := rec.checkRestore(version); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, rec.Type)
	if rec.Value.file == nil {
		rec.Value.eachInMemory(func(b []byte) error { dst = append(dst, b...); return nil })
	} else {
		w := appendWriter{dst}
		n, err := io.Copy(&w, rec.Value.Open())
		if err != nil {
			return dst, fmt.Errorf("rdb: reading spilled value: %w", err)
		}
		if n != rec.Value.n {
			return dst, fmt.Errorf("rdb: spilled value is %d bytes, expected %d", n, rec.Value.n)
		}
		dst = w.b
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(version))
	return binary.LittleEndian.AppendUint64(dst, crc64.Checksum(dst[start:])), nil
}

// TakeRestorePayload hands over the RESTORE payload of a value held in
// chunks (one over payloadChunk bytes, not spilled) as pieces to be sent in
// order: the type byte, the chunks, the RDB version and CRC64 (see
// WriteRestorePayload). The chunks become the caller's — the record's value
// is empty afterwards — and release returns them to the pool once nothing
// reads them. For any other value pieces is nil and the record unchanged:
// one slice is cheaper copied, a spilled value must be read.
func (rec *Record) TakeRestorePayload(version int) (pieces [][]byte, release func(), err error) {
	p := rec.Value
	if p == nil || p.chunks == nil || p.file != nil {
		return nil, nil, nil
	}
	if err := rec.checkRestore(version); err != nil {
		return nil, nil, err
	}
	chunks := p.chunks
	p.chunks, p.n = nil, 0
	foot := make([]byte, 11) // type byte, then version and CRC
	foot[0] = rec.Type
	crc := crc64.Update(0, foot[:1])
	pieces = make([][]byte, 0, len(chunks)+2)
	pieces = append(pieces, foot[:1])
	for _, c := range chunks {
		crc = crc64.Update(crc, c)
		pieces = append(pieces, c)
	}
	putFooter(foot[1:], crc, version)
	pieces = append(pieces, foot[1:])
	return pieces, func() { putChunks(chunks) }, nil
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// ParseDump checks a DUMP payload (version and CRC64) and returns the record
// it describes, as if framed from an RDB stream: Kind KindKey, the given db,
// key and expire, Type and Value from the payload. The value is framed, so a
// payload whose value does not exactly fill it is rejected. The record owns
// copies of key and value; call Release when done.
func ParseDump(db int, key, dump []byte, expireMs int64) (*Record, error) {
	if len(dump) < 11 {
		return nil, &FormatError{DB: db, Key: key, Msg: "DUMP payload too short"}
	}
	body := dump[:len(dump)-8]
	ver := int(binary.LittleEndian.Uint16(dump[len(dump)-10:]))
	stored := binary.LittleEndian.Uint64(dump[len(dump)-8:])
	if sum := crc64.Checksum(body); sum != stored {
		return nil, &FormatError{Offset: int64(len(body)), DB: db, Key: key, Err: ErrChecksum,
			Msg: fmt.Sprintf("DUMP payload CRC64 mismatch: stored %016x, computed %016x", stored, sum)}
	}
	if ver < 1 || ver > MaxVersion {
		return nil, &FormatError{Offset: int64(len(dump) - 10), DB: db, Key: key,
			Msg: fmt.Sprintf("DUMP payload has unsupported RDB version %d", ver)}
	}
	t := dump[0]
	raw := dump[1 : len(dump)-10]
	if !isValueType(t) || t == TypeModulePreGA {
		return nil, &FormatError{DB: db, Key: key, Msg: fmt.Sprintf("DUMP payload has unsupported value type %d", t)}
	}
	fr := &Reader{version: ver, opt: Options{MemLimit: int64(len(raw)) + 1}}
	fr.s = *newMemSrc(raw)
	rec := getRecord()
	rec.reset(fr, 0)
	rec.Kind, rec.Type, rec.DB = KindKey, t, db
	rec.keyBuf = append(rec.keyBuf[:0], key...)
	rec.Key = rec.keyBuf
	if expireMs > 0 {
		rec.ExpireMs = expireMs
	}
	rec.ValueOffset = 1
	if err := fr.frameValue(t, rec); err != nil {
		off := fr.s.offset() + 1
		rec.Release()
		return nil, &FormatError{Offset: off, DB: db, Key: key, Msg: describe(err, TypeName(t)+" value"), Err: underlying(err)}
	}
	if fr.s.r != len(raw) {
		rec.Release()
		return nil, &FormatError{Offset: fr.s.offset() + 1, DB: db, Key: key,
			Msg: fmt.Sprintf("%d trailing bytes after the %s value", len(raw)-fr.s.r, TypeName(t))}
	}
	rec.value.mem = append(rec.value.mem[:0], raw...)
	rec.value.n = int64(len(raw))
	rec.Value = &rec.value
	return rec, nil
}
