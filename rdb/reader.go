package rdb

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/ferry-dev/ferry/internal/crc64"
)

// Options configure a Reader.
type Options struct {
	// SpillDir is where values bigger than MemLimit are spilled (temporary
	// files, unlinked at creation where the OS allows it and closed/removed on
	// Release or Close). "" means os.TempDir().
	SpillDir string
	// MemLimit is the largest value (raw bytes) kept in memory; bigger values
	// go to a temporary file. Default (<= 0) 32 MiB.
	MemLimit int64
	// BufSize is the size of the read buffer. Default (<= 0) 1 MiB; minimum 64 KiB.
	BufSize int
}

const (
	defaultMemLimit = 32 << 20
	defaultBufSize  = 1 << 20
	minBufSize      = 64 << 10
)

// Reader frames an RDB stream into records without ever holding the whole
// stream in memory. It verifies the trailing CRC64. A Reader is not safe for
// concurrent use; the Records it returns are independent of it (except that
// Close invalidates spilled payloads not yet released) and may be handed to
// other goroutines.
type Reader struct {
	s       src
	opt     Options
	version int
	db      int
	err     error // sticky; io.EOF after a clean end
	closed  bool

	// expire/idle/freq opcodes seen before the next key
	pendSet    bool
	pendStart  int64
	pendExpire int64
	pendIdle   int64
	pendFreq   int

	spillMu sync.Mutex
	spills  map[*Payload]struct{}
}

// Record is one framed element of the RDB stream.
//
// Ownership: the Record and everything it references (Key, Aux, Code, Value)
// stay valid until the caller calls Release; Records are recycled after that,
// so nothing of it may be kept past Release (copy what you need). Records do
// not share buffers with the Reader or with each other, so several may be
// held at once and used from other goroutines.
type Record struct {
	Kind     Kind
	Offset   int64 // stream offset where the record (incl. its expire/idle/freq prefix) began
	DB       int
	Key      []byte
	Type     byte  // RDB value type byte (KindKey)
	ExpireMs int64 // absolute unix ms; 0 = no TTL (a stored expire <= 0 is reported as 1: long expired)
	Idle     int64 // LRU idle seconds, -1 when absent
	Freq     int   // LFU frequency, -1 when absent
	Aux      [2][]byte
	Code     []byte   // KindFunction: the library source
	Value    *Payload // KindKey and KindModuleAux: the raw value bytes (without the type byte)

	DBSize, ExpiresSize             uint64 // KindResizeDB
	Slot, SlotSize, SlotExpiresSize uint64 // KindSlotInfo
	ModuleID                        uint64 // KindModuleAux, and keys of TypeModule2
	ValueOffset                     int64  // stream offset of the first value byte (KindKey, KindModuleAux)
	Version                         int    // RDB version of the stream the record came from

	value  Payload
	keyBuf []byte
	auxBuf []byte
	pooled bool
}

// ModuleName returns the 9-character module type name of a module value or
// module aux record ("" for other records).
func (rec *Record) ModuleName() string {
	if (rec.Kind == KindKey && rec.Type == TypeModule2) || rec.Kind == KindModuleAux {
		return ModuleTypeName(rec.ModuleID)
	}
	return ""
}

// NewReader returns a Reader framing the RDB stream r. The Reader reads ahead:
// after Next returned io.EOF, Buffered holds the bytes read past the end of
// the RDB.
func NewReader(r io.Reader, opt Options) *Reader {
	if opt.MemLimit <= 0 {
		opt.MemLimit = defaultMemLimit
	}
	if opt.BufSize <= 0 {
		opt.BufSize = defaultBufSize
	}
	if opt.BufSize < minBufSize {
		opt.BufSize = minBufSize
	}
	rd := &Reader{opt: opt, db: 0}
	rd.s = src{rd: r, buf: make([]byte, opt.BufSize), crc: crc64.New()}
	rd.s.sinkR = rd
	return rd
}

// Version returns the RDB version from the header; valid after the first Next.
func (r *Reader) Version() int { return r.version }

// Offset returns the number of stream bytes consumed so far.
func (r *Reader) Offset() int64 { return r.s.offset() }

// Buffered returns the bytes read from the underlying reader but not
// consumed. After Next returned io.EOF these are the bytes that followed the
// RDB (for example the replication stream of a diskless sync).
func (r *Reader) Buffered() []byte { return r.s.buf[r.s.r:r.s.w] }

var errClosed = errors.New("rdb: reader closed")

// Close releases the read buffer and any spilled payload not yet released.
// It does not close the underlying io.Reader.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.closeSpills()
	r.s.buf = r.s.buf[r.s.r:r.s.w:r.s.w] // keep Buffered working
	r.s.r, r.s.w, r.s.rd = 0, len(r.s.buf), nil
	return nil
}

// fail records a sticky FormatError.
func (r *Reader) fail(err error, ctx string, rec *Record) error {
	r.s.capOn = false
	fe := &FormatError{Offset: r.s.offset(), DB: r.db, Msg: describe(err, ctx), Err: underlying(err)}
	if rec != nil {
		if rec.Key != nil {
			fe.Key = append([]byte(nil), rec.Key...)
		}
		rec.Release()
	}
	r.err = fe
	return fe
}

func (r *Reader) readHeader() error {
	b, err := r.s.next(9)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) && r.s.offset() == 0 && r.s.w == 0 {
			err = corrupt("empty input")
		}
		return r.fail(err, "RDB header", nil)
	}
	if string(b[:5]) != "REDIS" {
		r.s.r -= 9
		return r.fail(corrupt("not an RDB stream (bad magic %q)", b[:5]), "", nil)
	}
	v := 0
	for _, c := range b[5:] {
		if c < '0' || c > '9' {
			r.s.r -= 4
			return r.fail(corrupt("bad RDB version %q", b[5:]), "", nil)
		}
		v = v*10 + int(c-'0')
	}
	if v < 1 || v > MaxVersion {
		r.s.r -= 4
		return r.fail(corrupt("unsupported RDB version %d (this reader knows 1..%d)", v, MaxVersion), "", nil)
	}
	r.version = v
	return nil
}

func (r *Reader) setPend(start int64) {
	if !r.pendSet {
		r.pendSet = true
		r.pendStart = start
	}
}

func (r *Reader) clearPend() {
	r.pendSet = false
	r.pendExpire = 0
	r.pendIdle = -1
	r.pendFreq = -1
}

// Next returns the next record. It returns io.EOF after the EOF opcode and a
// good CRC; any other error is a *FormatError (sticky: later calls return it
// again).
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.closed {
		return nil, errClosed
	}
	if r.version == 0 {
		r.clearPend()
		if err := r.readHeader(); err != nil {
			return nil, err
		}
	}
	s := &r.s
	for {
		start := s.offset()
		op, err := s.readByte()
		if err != nil {
			return nil, r.fail(err, "record header (missing EOF opcode?)", nil)
		}
		switch op {
		case opExpireTimeMs:
			v, err := s.readU64()
			if err != nil {
				return nil, r.fail(err, "expire time", nil)
			}
			r.setPend(start)
			r.pendExpire = normExpire(int64(v))
			continue
		case opExpireTime:
			v, err := s.readU32()
			if err != nil {
				return nil, r.fail(err, "expire time", nil)
			}
			r.setPend(start)
			r.pendExpire = normExpire(int64(int32(v)) * 1000)
			continue
		case opIdle:
			v, err := s.readCount()
			if err != nil {
				return nil, r.fail(err, "idle time", nil)
			}
			r.setPend(start)
			r.pendIdle = int64(min(v, math.MaxInt64))
			continue
		case opFreq:
			v, err := s.readByte()
			if err != nil {
				return nil, r.fail(err, "LFU frequency", nil)
			}
			r.setPend(start)
			r.pendFreq = int(v)
			continue
		case opEOF:
			return nil, r.finish()
		case opFunctionPreGA:
			return nil, r.fail(corrupt("pre-release function format (opcode 246, Redis 7.0 RC) is not supported"), "", nil)
		}

		rec := getRecord()
		rec.reset(r, start)
		switch op {
		case opSelectDB:
			v, err := s.readCount()
			if err != nil {
				return nil, r.fail(err, "SELECTDB", rec)
			}
			if v > math.MaxInt32 {
				return nil, r.fail(corrupt("db number %d out of range", v), "SELECTDB", rec)
			}
			r.db = int(v)
			rec.Kind, rec.DB = KindSelectDB, r.db
			return rec, nil
		case opResizeDB:
			rec.Kind = KindResizeDB
			if rec.DBSize, err = s.readCount(); err == nil {
				rec.ExpiresSize, err = s.readCount()
			}
			if err != nil {
				return nil, r.fail(err, "RESIZEDB", rec)
			}
			return rec, nil
		case opSlotInfo:
			rec.Kind = KindSlotInfo
			if rec.Slot, err = s.readCount(); err == nil {
				if rec.SlotSize, err = s.readCount(); err == nil {
					rec.SlotExpiresSize, err = s.readCount()
				}
			}
			if err != nil {
				return nil, r.fail(err, "SLOT_INFO", rec)
			}
			return rec, nil
		case opAux:
			rec.Kind = KindAux
			name, err := s.readString(rec.keyBuf[:0], 1<<30)
			rec.keyBuf = name
			if err != nil {
				return nil, r.fail(err, "AUX field", rec)
			}
			val, err := s.readString(rec.auxBuf[:0], 1<<30)
			rec.auxBuf = val
			if err != nil {
				return nil, r.fail(err, fmt.Sprintf("AUX field %q", name), rec)
			}
			rec.Aux = [2][]byte{name, val}
			return rec, nil
		case opFunction2:
			rec.Kind = KindFunction
			code, err := s.readString(rec.auxBuf[:0], 1<<30)
			rec.auxBuf = code
			if err != nil {
				return nil, r.fail(err, "function library", rec)
			}
			rec.Code = code
			return rec, nil
		case opModuleAux:
			rec.Kind = KindModuleAux
			r.startCapture(rec)
			if err := r.frameModuleAux(rec); err != nil {
				return nil, r.fail(err, "module aux data", rec)
			}
			if err := r.endCapture(rec); err != nil {
				return nil, r.fail(err, "module aux data", rec)
			}
			return rec, nil
		}

		if !isValueType(op) {
			s.r--
			return nil, r.fail(corrupt("unknown record type or opcode %d", op), "", rec)
		}
		rec.Kind = KindKey
		rec.Type = op
		if r.pendSet {
			rec.Offset = r.pendStart
			rec.ExpireMs, rec.Idle, rec.Freq = r.pendExpire, r.pendIdle, r.pendFreq
			r.clearPend()
		}
		key, err := s.readString(rec.keyBuf[:0], maxKeyLen)
		rec.keyBuf = key
		if err != nil {
			return nil, r.fail(err, "key of "+TypeName(op)+" record", rec)
		}
		rec.Key = key
		if op == TypeModulePreGA {
			return nil, r.fail(corrupt("pre-release module value format (type 6, Redis 4.0 RC) is not supported"), "", rec)
		}
		r.startCapture(rec)
		if err := r.frameValue(op, rec); err != nil {
			return nil, r.fail(err, TypeName(op)+" value", rec)
		}
		if err := r.endCapture(rec); err != nil {
			return nil, r.fail(err, TypeName(op)+" value", rec)
		}
		return rec, nil
	}
}

func normExpire(ms int64) int64 {
	if ms <= 0 {
		return 1
	}
	return ms
}

func (rec *Record) reset(r *Reader, start int64) {
	*rec = Record{
		Offset:  start,
		DB:      r.db,
		Idle:    -1,
		Freq:    -1,
		Version: r.version,
		value:   Payload{mem: rec.value.mem[:0]},
		keyBuf:  rec.keyBuf[:0],
		auxBuf:  rec.auxBuf[:0],
	}
}

func (r *Reader) startCapture(rec *Record) {
	s := &r.s
	rec.ValueOffset = s.offset()
	rec.value.mem = rec.value.mem[:0]
	rec.value.n = 0
	s.sink = &rec.value
	s.mark = s.r
	s.capOn = true
}

func (r *Reader) endCapture(rec *Record) error {
	s := &r.s
	s.capOn = false
	err := r.spillWrite(s.sink, s.buf[s.mark:s.r])
	s.sink = nil
	rec.Value = &rec.value
	return err
}

// finish handles the EOF opcode: CRC check for version >= 5.
func (r *Reader) finish() error {
	s := &r.s
	if r.version >= 5 {
		s.crc.Write(s.buf[s.crcPos:s.r])
		s.crcPos = s.r
		computed := s.crc.Sum64()
		stored, err := s.readU64()
		if err != nil {
			return r.fail(err, "CRC64 trailer", nil)
		}
		if stored != 0 && stored != computed {
			s.r -= 8
			fe := &FormatError{Offset: s.offset(), DB: -1, Err: ErrChecksum,
				Msg: fmt.Sprintf("CRC64 mismatch: stored %016x, computed %016x", stored, computed)}
			r.err = fe
			return fe
		}
	}
	r.err = io.EOF
	return io.EOF
}

// frameValue walks the value of type t, consuming exactly its bytes.
func (r *Reader) frameValue(t byte, rec *Record) error {
	s := &r.s
	switch t {
	case TypeString, TypeHashZipmap, TypeListZiplist, TypeSetIntset, TypeZSetZiplist,
		TypeHashZiplist, TypeHashListpack, TypeZSetListpack, TypeSetListpack, TypeHashListpackExPreGA:
		return s.skipString()
	case TypeHashListpackEx:
		if err := s.skip(8); err != nil {
			return err
		}
		return s.skipString()
	case TypeList, TypeSet, TypeListQuicklist:
		n, err := s.readCount()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := s.skipString(); err != nil {
				return err
			}
		}
		return nil
	case TypeHash:
		n, err := s.readCount()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := s.skipString(); err != nil {
				return err
			}
			if err := s.skipString(); err != nil {
				return err
			}
		}
		return nil
	case TypeZSet, TypeZSet2:
		n, err := s.readCount()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := s.skipString(); err != nil {
				return err
			}
			if t == TypeZSet2 {
				err = s.skip(8)
			} else {
				var b byte
				if b, err = s.readByte(); err == nil && b < 253 {
					err = s.skip(uint64(b))
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	case TypeListQuicklist2:
		n, err := s.readCount()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			c, err := s.readCount()
			if err != nil {
				return err
			}
			if c != 1 && c != 2 {
				return corrupt("bad quicklist container %d", c)
			}
			if err := s.skipString(); err != nil {
				return err
			}
		}
		return nil
	case TypeHashMetadata, TypeHashMetadataPreGA:
		if t == TypeHashMetadata {
			if err := s.skip(8); err != nil {
				return err
			}
		}
		n, err := s.readCount()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if _, err := s.readCount(); err != nil {
				return err
			}
			if err := s.skipString(); err != nil {
				return err
			}
			if err := s.skipString(); err != nil {
				return err
			}
		}
		return nil
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return r.frameStream(t)
	case TypeModule2:
		id, err := s.readCount()
		if err != nil {
			return err
		}
		rec.ModuleID = id
		return r.frameModuleBody()
	}
	return corrupt("unsupported value type %d", t)
}

func (r *Reader) frameStream(t byte) error {
	s := &r.s
	n, err := s.readCount()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		if err := s.skipString(); err != nil { // master ID
			return err
		}
		if err := s.skipString(); err != nil { // listpack
			return err
		}
	}
	meta := 3 // length, last id ms, seq
	if t >= TypeStreamListpacks2 {
		meta += 5 // first id, max deleted id, entries added
	}
	for i := 0; i < meta; i++ {
		if _, err := s.readCount(); err != nil {
			return err
		}
	}
	groups, err := s.readCount()
	if err != nil {
		return err
	}
	for ; groups > 0; groups-- {
		if err := s.skipString(); err != nil {
			return err
		}
		fields := 2
		if t >= TypeStreamListpacks2 {
			fields = 3 // + entries read
		}
		for i := 0; i < fields; i++ {
			if _, err := s.readCount(); err != nil {
				return err
			}
		}
		pel, err := s.readCount()
		if err != nil {
			return err
		}
		for ; pel > 0; pel-- {
			if err := s.skip(16 + 8); err != nil { // id, delivery time
				return err
			}
			if _, err := s.readCount(); err != nil { // delivery count
				return err
			}
		}
		consumers, err := s.readCount()
		if err != nil {
			return err
		}
		for ; consumers > 0; consumers-- {
			if err := s.skipString(); err != nil {
				return err
			}
			times := uint64(8)
			if t >= TypeStreamListpacks3 {
				times = 16
			}
			if err := s.skip(times); err != nil {
				return err
			}
			cpel, err := s.readCount()
			if err != nil {
				return err
			}
			if cpel > math.MaxUint64/16 {
				return corrupt("consumer PEL size %d out of range", cpel)
			}
			if err := s.skip(cpel * 16); err != nil {
				return err
			}
		}
	}
	return nil
}

// frameModuleBody walks module opcodes up to and including the EOF opcode.
func (r *Reader) frameModuleBody() error {
	s := &r.s
	for {
		op, err := s.readCount()
		if err != nil {
			return err
		}
		switch op {
		case modOpEOF:
			return nil
		case modOpSInt, modOpUInt:
			_, _, err = s.readLen()
		case modOpFloat:
			err = s.skip(4)
		case modOpDouble:
			err = s.skip(8)
		case modOpString:
			err = s.skipString()
		default:
			return corrupt("unknown module opcode %d", op)
		}
		if err != nil {
			return err
		}
	}
}

func (r *Reader) frameModuleAux(rec *Record) error {
	s := &r.s
	id, err := s.readCount()
	if err != nil {
		return err
	}
	rec.ModuleID = id
	whenOp, err := s.readCount()
	if err != nil {
		return err
	}
	if whenOp != modOpUInt {
		return corrupt("bad module aux 'when' opcode %d", whenOp)
	}
	if _, err := s.readCount(); err != nil {
		return err
	}
	return r.frameModuleBody()
}
