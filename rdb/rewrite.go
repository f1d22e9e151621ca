package rdb

import (
	"fmt"
	"strconv"
	"sync"
	"time"
)

// RewriteOptions tune Rewrite.
type RewriteOptions struct {
	// MaxElems is the most elements (list items, set members, zset
	// score/member pairs, hash field/value pairs) per command. Default 512.
	MaxElems int
	// MaxBytes closes a command once its element bytes reach this size (so a
	// command holds at most MaxBytes plus one element). Big strings are sent
	// as SET plus APPENDs of this size. Default 1 MiB.
	MaxBytes int
	// Now is the clock used to drop expired keys and hash fields and to
	// compute XCLAIM idle times. Default time.Now.
	Now func() time.Time
}

const (
	defaultMaxElems = 512
	defaultMaxBytes = 1 << 20
	// compact encodings (listpack, ziplist, intset...) are decoded in memory;
	// Redis caps them at 1 GiB (LISTPACK_MAX_SAFETY_SIZE).
	maxBlobLen = 1 << 30
)

// maxPELInMem is the most group PEL entries kept in memory (32 bytes each)
// to join them with the consumers' PELs; bigger PELs are joined by scanning
// the value again per consumer. A variable for tests.
var maxPELInMem uint64 = 1 << 20

// Rewrite emits the commands that recreate rec on a target, in order. args[0]
// is the command name; emit may not retain args (nor any of its slices) after
// it returns. An error returned by emit stops Rewrite and is returned as is.
//
// For KindKey records: DEL key; then RPUSH / SADD / ZADD / HSET batches (see
// RewriteOptions), SET (+APPEND) for strings, or for streams XADD per live
// entry, XSETID, XGROUP CREATE, XGROUP CREATECONSUMER and XCLAIM ... FORCE
// JUSTID per pending entry; HPEXPIREAT per hash field with a TTL; finally
// PEXPIREAT when the key has a TTL. Keys already expired at Now emit nothing;
// hash fields already expired are left out.
//
// KindFunction emits FUNCTION LOAD REPLACE <code>. Module values and module
// aux data return an error wrapping ErrModuleValue. Other kinds (aux,
// selectdb, resizedb, slotinfo) emit nothing: selecting the db is the
// caller's business.
//
// Values are decoded incrementally: memory stays bounded by one command
// batch plus one compact-encoded blob (listpack/ziplist, at most a few KB in
// practice) even for values spilled to disk.
//
// Known limits (Redis offers no command for them): consumer seen/active
// times are not carried over; a pending entry whose stream entry was deleted
// cannot be recreated (XCLAIM ignores it); a group-level pending entry that no
// consumer owns (only found in damaged data) is dropped.
func Rewrite(rec *Record, opt RewriteOptions, emit func(args [][]byte) error) error {
	if opt.MaxElems <= 0 {
		opt.MaxElems = defaultMaxElems
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = defaultMaxBytes
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	switch rec.Kind {
	case KindFunction:
		return emit([][]byte{[]byte("FUNCTION"), []byte("LOAD"), []byte("REPLACE"), rec.Code})
	case KindModuleAux:
		return fmt.Errorf("rdb: module aux data of module type %q: %w", rec.ModuleName(), ErrModuleValue)
	case KindKey:
	default:
		return nil
	}
	if rec.Type == TypeModule2 || rec.Type == TypeModulePreGA {
		return fmt.Errorf("rdb: key %s: value of module type %q: %w", quoteKey(rec.Key), ModuleTypeName(rec.ModuleID), ErrModuleValue)
	}
	now := opt.Now().UnixMilli()
	if rec.ExpireMs > 0 && rec.ExpireMs <= now {
		return nil
	}
	w := getRewriter()
	defer putRewriter(w)
	w.rec, w.opt, w.emit, w.now, w.key = rec, opt, emit, now, rec.Key
	w.openValue()
	defer w.closeValue()

	w.args = append(w.args[:0], bDEL, rec.Key)
	if err := emit(w.args); err != nil {
		return err
	}
	if err := w.value(rec.Type); err != nil {
		if w.emitErr {
			return err
		}
		return &FormatError{
			Offset: rec.ValueOffset + w.s.offset(), DB: rec.DB,
			Key: append([]byte(nil), rec.Key...),
			Msg: describe(err, TypeName(rec.Type)+" value"), Err: underlying(err),
		}
	}
	if rec.ExpireMs > 0 && w.wrote {
		w.args = append(w.args[:0], bPEXPIREAT, rec.Key, strconv.AppendInt(w.num[:0], rec.ExpireMs, 10))
		return emit(w.args)
	}
	return nil
}

var (
	bDEL       = []byte("DEL")
	bPEXPIREAT = []byte("PEXPIREAT")
)

type rewriter struct {
	rec  *Record
	opt  RewriteOptions
	emit func([][]byte) error
	now  int64
	key  []byte

	s      *src
	memSrc src
	ioBuf  []byte

	// current batch
	cmd     []byte
	data    []byte
	ends    []int
	n       int
	ttls    []ttlField
	args    [][]byte
	scratch []byte
	blob    []byte
	num     [24]byte
	wrote   bool
	emitErr bool
	fields  []elem
}

var rewriterPool = sync.Pool{New: func() any { return new(rewriter) }}

func getRewriter() *rewriter { return rewriterPool.Get().(*rewriter) }

func putRewriter(w *rewriter) {
	keep := func(b []byte) []byte {
		if cap(b) > 4*defaultMaxBytes {
			return nil
		}
		return b[:0]
	}
	*w = rewriter{
		ioBuf:   w.ioBuf,
		data:    keep(w.data),
		scratch: keep(w.scratch),
		blob:    keep(w.blob),
		ends:    w.ends[:0],
		ttls:    w.ttls[:0],
		args:    w.args[:0],
		fields:  w.fields[:0],
	}
	rewriterPool.Put(w)
}

func (w *rewriter) openValue() {
	p := w.rec.Value
	if mem, ok := p.flat(); ok {
		w.memSrc = src{buf: mem, w: len(mem), fixed: true}
		w.s = &w.memSrc
		return
	}
	if w.ioBuf == nil {
		w.ioBuf = make([]byte, 256<<10)
	}
	w.memSrc = src{rd: p.Open(), buf: w.ioBuf}
	w.s = &w.memSrc
}

func (w *rewriter) closeValue() { w.s = nil }

// ---- batching ----

func (w *rewriter) begin(cmd []byte) {
	w.cmd = cmd
	w.data = w.data[:0]
	w.ends = w.ends[:0]
	w.ttls = w.ttls[:0]
	w.n = 0
}

func (w *rewriter) endArg() { w.ends = append(w.ends, len(w.data)) }

func (w *rewriter) addBytes(b []byte) {
	w.data = append(w.data, b...)
	w.endArg()
}

func (w *rewriter) addElem(e elem) {
	w.data = e.appendTo(w.data)
	w.endArg()
}

// addString reads an RDB string from the value straight into the batch.
func (w *rewriter) addString() error {
	var err error
	w.data, err = w.s.readString(w.data, maxStringLen)
	if err != nil {
		return err
	}
	w.endArg()
	return nil
}

// endElem closes one element (or pair) and flushes a full batch.
func (w *rewriter) endElem() error {
	w.n++
	if w.n >= w.opt.MaxElems || len(w.data) >= w.opt.MaxBytes {
		return w.flush()
	}
	return nil
}

func (w *rewriter) doEmit(args [][]byte) error {
	if err := w.emit(args); err != nil {
		w.emitErr = true
		return err
	}
	w.wrote = true
	return nil
}

func (w *rewriter) argAt(i int) []byte {
	start := 0
	if i > 0 {
		start = w.ends[i-1]
	}
	return w.data[start:w.ends[i]]
}

func (w *rewriter) flush() error {
	if w.n == 0 {
		w.begin(w.cmd)
		return nil
	}
	args := append(w.args[:0], w.cmd, w.key)
	start := 0
	for _, e := range w.ends {
		args = append(args, w.data[start:e])
		start = e
	}
	w.args = args
	if err := w.doEmit(args); err != nil {
		return err
	}
	for _, t := range w.ttls {
		a := append(w.args[:0], bHPEXPIREAT, w.key, strconv.AppendInt(w.num[:0], t.ms, 10), bFIELDS, bOne, w.argAt(t.idx))
		w.args = a
		if err := w.doEmit(a); err != nil {
			return err
		}
	}
	if cap(w.data) > 4*w.opt.MaxBytes && cap(w.data) > 4*defaultMaxBytes {
		w.data = nil
	}
	w.begin(w.cmd)
	return nil
}

var (
	bRPUSH      = []byte("RPUSH")
	bSADD       = []byte("SADD")
	bZADD       = []byte("ZADD")
	bHSET       = []byte("HSET")
	bSET        = []byte("SET")
	bAPPEND     = []byte("APPEND")
	bHPEXPIREAT = []byte("HPEXPIREAT")
	bFIELDS     = []byte("FIELDS")
	bOne        = []byte("1")
)

// readBlob reads an RDB string holding a compact encoding.
func (w *rewriter) readBlob() ([]byte, error) {
	var b []byte
	var err error
	b, w.blob, err = w.s.readStringView(w.blob, maxBlobLen)
	return b, err
}

func (w *rewriter) count() (uint64, error) { return w.s.readCount() }

// ---- per type ----

func (w *rewriter) value(t byte) error {
	switch t {
	case TypeString:
		return w.str()
	case TypeList, TypeSet:
		cmd := bRPUSH
		if t == TypeSet {
			cmd = bSADD
		}
		w.begin(cmd)
		n, err := w.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := w.addString(); err != nil {
				return err
			}
			if err := w.endElem(); err != nil {
				return err
			}
		}
		return w.flush()
	case TypeListZiplist, TypeListQuicklist:
		w.begin(bRPUSH)
		n := uint64(1)
		if t == TypeListQuicklist {
			var err error
			if n, err = w.count(); err != nil {
				return err
			}
		}
		for ; n > 0; n-- {
			b, err := w.readBlob()
			if err != nil {
				return err
			}
			if err := w.ziplistElems(b, 1); err != nil {
				return err
			}
		}
		return w.flush()
	case TypeListQuicklist2:
		w.begin(bRPUSH)
		n, err := w.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			c, err := w.count()
			if err != nil {
				return err
			}
			b, err := w.readBlob()
			if err != nil {
				return err
			}
			switch c {
			case 1: // PLAIN: the blob is one element
				w.addBytes(b)
				if err := w.endElem(); err != nil {
					return err
				}
			case 2:
				if err := w.listpackElems(b, 1); err != nil {
					return err
				}
			default:
				return corrupt("bad quicklist container %d", c)
			}
		}
		return w.flush()
	case TypeSetIntset:
		w.begin(bSADD)
		b, err := w.readBlob()
		if err != nil {
			return err
		}
		it, err := newIntset(b)
		if err != nil {
			return err
		}
		for e, ok := it.next(); ok; e, ok = it.next() {
			w.addElem(e)
			if err := w.endElem(); err != nil {
				return err
			}
		}
		return w.flush()
	case TypeSetListpack:
		w.begin(bSADD)
		b, err := w.readBlob()
		if err != nil {
			return err
		}
		if err := w.listpackElems(b, 1); err != nil {
			return err
		}
		return w.flush()
	case TypeZSet, TypeZSet2:
		return w.zsetPlain(t)
	case TypeZSetZiplist, TypeZSetListpack:
		w.begin(bZADD)
		b, err := w.readBlob()
		if err != nil {
			return err
		}
		if t == TypeZSetZiplist {
			err = w.zsetPairs(b, false)
		} else {
			err = w.zsetPairs(b, true)
		}
		if err != nil {
			return err
		}
		return w.flush()
	case TypeHash:
		w.begin(bHSET)
		n, err := w.count()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := w.addString(); err != nil {
				return err
			}
			if err := w.addString(); err != nil {
				return err
			}
			if err := w.endElem(); err != nil {
				return err
			}
		}
		return w.flush()
	case TypeHashZipmap:
		w.begin(bHSET)
		b, err := w.readBlob()
		if err != nil {
			return err
		}
		it, err := newZipmap(b)
		if err != nil {
			return err
		}
		for {
			f, v, ok, err := it.next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			w.addBytes(f)
			w.addBytes(v)
			if err := w.endElem(); err != nil {
				return err
			}
		}
		return w.flush()
	case TypeHashZiplist:
		w.begin(bHSET)
		b, err := w.readBlob()
		if err != nil {
			return err
		}
		if err := w.ziplistElems(b, 2); err != nil {
			return err
		}
		return w.flush()
	case TypeHashListpack:
		w.begin(bHSET)
		b, err := w.readBlob()
		if err != nil {
			return err
		}
		if err := w.listpackElems(b, 2); err != nil {
			return err
		}
		return w.flush()
	case TypeHashMetadata, TypeHashMetadataPreGA:
		return w.hashMetadata(t)
	case TypeHashListpackEx, TypeHashListpackExPreGA:
		return w.hashListpackEx(t)
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return w.stream(t)
	}
	return corrupt("unsupported value type %d", t)
}

func (w *rewriter) str() error {
	s := w.s
	v, enc, err := s.readLen()
	if err != nil {
		return err
	}
	if enc {
		w.data, err = s.readEncoded(w.data[:0], v, maxStringLen)
		if err != nil {
			return err
		}
		return w.doEmit(append(w.args[:0], bSET, w.key, w.data))
	}
	if v > maxStringLen {
		return corrupt("string length %d exceeds limit", v)
	}
	cmd := bSET
	chunk := uint64(w.opt.MaxBytes)
	for first := true; first || v > 0; first = false {
		n := min(v, chunk)
		w.data, err = s.appendN(w.data[:0], n)
		if err != nil {
			return err
		}
		v -= n
		if err := w.doEmit(append(w.args[:0], cmd, w.key, w.data)); err != nil {
			return err
		}
		cmd = bAPPEND
	}
	return nil
}

// listpackElems adds all elements of a listpack; group elements make one
// batch element (1 for lists/sets, 2 for hash field/value pairs).
func (w *rewriter) listpackElems(b []byte, group int) error {
	it, err := newLP(b)
	if err != nil {
		return err
	}
	return w.groupedElems(&it, group, "listpack")
}

func (w *rewriter) ziplistElems(b []byte, group int) error {
	it, err := newZL(b)
	if err != nil {
		return err
	}
	return w.groupedElems(&it, group, "ziplist")
}

// elemIter is a listpack or ziplist iterator.
type elemIter interface {
	next() (elem, bool, error)
}

func (w *rewriter) groupedElems(it elemIter, group int, what string) error {
	k := 0
	for {
		e, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		w.addElem(e)
		if k++; k == group {
			k = 0
			if err := w.endElem(); err != nil {
				return err
			}
		}
	}
	if k != 0 {
		return corrupt("%s has an odd number of elements", what)
	}
	return nil
}

// ---- streams ----
