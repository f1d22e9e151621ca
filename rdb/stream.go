package rdb

import (
	"encoding/binary"
	"math"
	"sort"
	"strconv"
)

const (
	streamFlagDeleted    = 1
	streamFlagSameFields = 2
)

var (
	bXADD            = []byte("XADD")
	bXSETID          = []byte("XSETID")
	bXGROUP          = []byte("XGROUP")
	bCREATE          = []byte("CREATE")
	bCREATECONSUMER  = []byte("CREATECONSUMER")
	bMKSTREAM        = []byte("MKSTREAM")
	bENTRIESREAD     = []byte("ENTRIESREAD")
	bENTRIESADDED    = []byte("ENTRIESADDED")
	bMAXDELETEDID    = []byte("MAXDELETEDID")
	bMAXLEN          = []byte("MAXLEN")
	bZero            = []byte("0")
	bXCLAIM          = []byte("XCLAIM")
	bIDLE            = []byte("IDLE")
	bTIME            = []byte("TIME")
	bRETRYCOUNT      = []byte("RETRYCOUNT")
	bFORCE           = []byte("FORCE")
	bJUSTID          = []byte("JUSTID")
	bPlaceholderName = []byte("-")
)

type nack struct {
	id    streamID
	time  int64
	count uint64
}

// emitArgs emits the args collected in the batch arena as one command.
func (w *rewriter) emitArena(prefix ...[]byte) error {
	args := append(w.args[:0], prefix...)
	start := 0
	for _, e := range w.ends {
		args = append(args, w.data[start:e])
		start = e
	}
	w.args = args
	return w.doEmit(args)
}

func (w *rewriter) stream(t byte) error {
	s := w.s
	nlp, err := w.count()
	if err != nil {
		return err
	}
	added := 0
	var prev streamID
	for ; nlp > 0; nlp-- {
		w.scratch, err = s.readString(w.scratch[:0], 64)
		if err != nil {
			return err
		}
		if len(w.scratch) != 16 {
			return corrupt("stream node key of %d bytes (want 16)", len(w.scratch))
		}
		master := rawID(w.scratch)
		lp, err := w.readBlob()
		if err != nil {
			return err
		}
		n, err := w.streamNode(master, lp, &prev)
		if err != nil {
			return err
		}
		added += n
	}
	var meta [8]uint64
	nmeta := 3
	if t >= TypeStreamListpacks2 {
		nmeta = 8
	}
	for i := 0; i < nmeta; i++ {
		if meta[i], err = w.count(); err != nil {
			return err
		}
	}
	lastID := streamID{meta[1], meta[2]}
	maxDel := streamID{meta[5], meta[6]}
	entriesAdded := meta[7]

	if added == 0 {
		// An empty stream: create it with an entry trimmed away at once.
		id := lastID
		if id.isZero() {
			id = streamID{0, 1}
		}
		w.data = appendID(w.data[:0], id)
		if err := w.doEmit(append(w.args[:0], bXADD, w.key, bMAXLEN, bZero, w.data, bPlaceholderName, bPlaceholderName)); err != nil {
			return err
		}
	}
	w.begin(nil)
	w.data = appendID(w.data, lastID)
	w.endArg()
	if t >= TypeStreamListpacks2 {
		w.addBytes(bENTRIESADDED)
		w.data = strconv.AppendUint(w.data, entriesAdded, 10)
		w.endArg()
		w.addBytes(bMAXDELETEDID)
		w.data = appendID(w.data, maxDel)
		w.endArg()
	}
	if err := w.emitArena(bXSETID, w.key); err != nil {
		return err
	}

	groups, err := w.count()
	if err != nil {
		return err
	}
	for ; groups > 0; groups-- {
		if err := w.streamGroup(t, added == 0); err != nil {
			return err
		}
	}
	return nil
}

// streamNode emits XADD for the live entries of one stream listpack.
func (w *rewriter) streamNode(master streamID, lp []byte, prev *streamID) (int, error) {
	it, err := newLP(lp)
	if err != nil {
		return 0, err
	}
	nextInt := func(what string) (int64, error) {
		e, ok, err := it.next()
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, corrupt("stream listpack ends inside %s", what)
		}
		v, ok := e.int()
		if !ok {
			return 0, corrupt("stream listpack: %s is not an integer", what)
		}
		return v, nil
	}
	nextElem := func(what string) (elem, error) {
		e, ok, err := it.next()
		if err != nil {
			return e, err
		}
		if !ok {
			return e, corrupt("stream listpack ends inside %s", what)
		}
		return e, nil
	}
	// master entry: count, deleted, #fields, fields..., 0
	if _, err := nextInt("master entry"); err != nil {
		return 0, err
	}
	if _, err := nextInt("master entry"); err != nil {
		return 0, err
	}
	nf, err := nextInt("master entry")
	if err != nil {
		return 0, err
	}
	if nf < 0 || nf > int64(len(lp)) {
		return 0, corrupt("stream master entry with %d fields", nf)
	}
	w.fields = w.fields[:0]
	for i := int64(0); i < nf; i++ {
		e, err := nextElem("master entry")
		if err != nil {
			return 0, err
		}
		w.fields = append(w.fields, e)
	}
	if _, err := nextInt("master entry"); err != nil {
		return 0, err
	}
	added := 0
	for {
		fe, ok, err := it.next()
		if err != nil {
			return added, err
		}
		if !ok {
			return added, nil
		}
		flags, ok := fe.int()
		if !ok {
			return added, corrupt("stream entry flags are not an integer")
		}
		msd, err := nextInt("entry id")
		if err != nil {
			return added, err
		}
		seqd, err := nextInt("entry id")
		if err != nil {
			return added, err
		}
		id := streamID{master.ms + uint64(msd), master.seq + uint64(seqd)}
		live := flags&streamFlagDeleted == 0
		w.begin(nil)
		w.data = appendID(w.data, id)
		w.endArg()
		if flags&streamFlagSameFields != 0 {
			for _, f := range w.fields {
				v, err := nextElem("entry")
				if err != nil {
					return added, err
				}
				if live {
					w.addElem(f)
					w.addElem(v)
				}
			}
		} else {
			n, err := nextInt("entry")
			if err != nil {
				return added, err
			}
			if n < 0 || n > int64(len(lp)) {
				return added, corrupt("stream entry with %d fields", n)
			}
			for i := int64(0); i < 2*n; i++ {
				e, err := nextElem("entry")
				if err != nil {
					return added, err
				}
				if live {
					w.addElem(e)
				}
			}
		}
		if _, err := nextInt("entry"); err != nil { // lp-count
			return added, err
		}
		if !live {
			continue
		}
		if len(w.ends) < 3 {
			return added, corrupt("stream entry %d-%d without fields", id.ms, id.seq)
		}
		if !prev.less(id) {
			return added, corrupt("stream entry IDs not increasing at %d-%d", id.ms, id.seq)
		}
		*prev = id
		if err := w.emitArena(bXADD, w.key); err != nil {
			return added, err
		}
		added++
	}
}

func (w *rewriter) streamGroup(t byte, mkstream bool) error {
	s := w.s
	var err error
	w.scratch, err = s.readString(w.scratch[:0], maxKeyLen)
	if err != nil {
		return err
	}
	group := append([]byte(nil), w.scratch...)
	var gid streamID
	if gid.ms, err = w.count(); err != nil {
		return err
	}
	if gid.seq, err = w.count(); err != nil {
		return err
	}
	w.begin(nil)
	w.addBytes(group)
	w.data = appendID(w.data, gid)
	w.endArg()
	if mkstream {
		w.addBytes(bMKSTREAM)
	}
	if t >= TypeStreamListpacks2 {
		er, err := w.count()
		if err != nil {
			return err
		}
		w.addBytes(bENTRIESREAD)
		w.data = strconv.AppendInt(w.data, int64(er), 10) // 2^64-1 is "unknown": -1
		w.endArg()
	}
	if err := w.emitArena(bXGROUP, bCREATE, w.key); err != nil {
		return err
	}

	// global PEL
	npel, err := w.count()
	if err != nil {
		return err
	}
	pelOff := s.offset()
	var pel []nack
	inMem := npel <= maxPELInMem
	sorted := true
	if inMem {
		for i := uint64(0); i < npel; i++ {
			nk, err := readNack(s)
			if err != nil {
				return err
			}
			if len(pel) > 0 && !pel[len(pel)-1].id.less(nk.id) {
				sorted = false
			}
			pel = append(pel, nk)
		}
		if !sorted {
			sort.Slice(pel, func(i, j int) bool { return pel[i].id.less(pel[j].id) })
		}
	} else {
		for i := uint64(0); i < npel; i++ {
			if _, err := readNack(s); err != nil {
				return err
			}
		}
	}

	consumers, err := w.count()
	if err != nil {
		return err
	}
	for ; consumers > 0; consumers-- {
		w.scratch, err = s.readString(w.scratch[:0], maxKeyLen)
		if err != nil {
			return err
		}
		consumer := append([]byte(nil), w.scratch...)
		skip := uint64(8)
		if t >= TypeStreamListpacks3 {
			skip = 16
		}
		if err := s.skip(skip); err != nil { // seen time (+ active time)
			return err
		}
		if err := w.doEmit(append(w.args[:0], bXGROUP, bCREATECONSUMER, w.key, group, consumer)); err != nil {
			return err
		}
		n, err := w.count()
		if err != nil {
			return err
		}
		var join *pelJoin
		if !inMem {
			join = w.newPELJoin(pelOff, npel)
		}
		for ; n > 0; n-- {
			b, err := s.next(16)
			if err != nil {
				return err
			}
			id := rawID(b)
			var nk nack
			var found bool
			if inMem {
				i := sort.Search(len(pel), func(i int) bool { return !pel[i].id.less(id) })
				found = i < len(pel) && pel[i].id == id
				if found {
					nk = pel[i]
				}
			} else {
				nk, found, err = join.find(id)
				if err != nil {
					return err
				}
			}
			if !found {
				// Redis refuses such data ("Consumer entry not found in group global PEL").
				return corrupt("consumer PEL entry %d-%d not in the group PEL", id.ms, id.seq)
			}
			if err := w.claim(group, consumer, nk); err != nil {
				return err
			}
		}
	}
	return nil
}

func readNack(s *src) (nack, error) {
	b, err := s.next(16)
	if err != nil {
		return nack{}, err
	}
	id := rawID(b)
	tm, err := s.readU64()
	if err != nil {
		return nack{}, err
	}
	cnt, err := s.readCount()
	if err != nil {
		return nack{}, err
	}
	return nack{id: id, time: int64(tm), count: cnt}, nil
}

// claim emits XCLAIM key group consumer 0 id IDLE ms TIME ms RETRYCOUNT n FORCE JUSTID.
func (w *rewriter) claim(group, consumer []byte, nk nack) error {
	idle := w.now - nk.time
	if idle < 0 || nk.time < 0 {
		idle = 0
	}
	cnt := nk.count
	if cnt > math.MaxInt64 {
		cnt = math.MaxInt64
	}
	w.begin(nil)
	w.data = appendID(w.data, nk.id)
	w.endArg()
	w.addBytes(bIDLE)
	w.data = strconv.AppendInt(w.data, idle, 10)
	w.endArg()
	w.addBytes(bTIME)
	w.data = strconv.AppendInt(w.data, max(nk.time, 0), 10)
	w.endArg()
	w.addBytes(bRETRYCOUNT)
	w.data = strconv.AppendUint(w.data, cnt, 10)
	w.endArg()
	w.addBytes(bFORCE)
	w.addBytes(bJUSTID)
	return w.emitArena(bXCLAIM, w.key, group, consumer, bZero)
}

// pelJoin looks up consumer PEL ids in a group PEL too big to keep in
// memory, by scanning it (both are sorted by id) from a second reader over
// the value.
type pelJoin struct {
	s    *src
	left uint64
	cur  nack
	have bool
}

func (w *rewriter) newPELJoin(off int64, n uint64) *pelJoin {
	p := w.rec.Value
	var s *src
	if mem, ok := p.flat(); ok {
		s = newMemSrc(mem[off:])
	} else {
		s = &src{rd: p.openAt(off), buf: make([]byte, 64<<10)}
	}
	return &pelJoin{s: s, left: n}
}

func (j *pelJoin) find(id streamID) (nack, bool, error) {
	for {
		if j.have {
			if j.cur.id == id {
				return j.cur, true, nil
			}
			if id.less(j.cur.id) {
				return nack{}, false, nil
			}
		}
		if j.left == 0 {
			return nack{}, false, nil
		}
		nk, err := readNack(j.s)
		if err != nil {
			return nack{}, false, err
		}
		j.left--
		j.cur, j.have = nk, true
	}
}

type streamID struct{ ms, seq uint64 }

func (id streamID) less(o streamID) bool {
	return id.ms < o.ms || (id.ms == o.ms && id.seq < o.seq)
}

func (id streamID) isZero() bool { return id.ms == 0 && id.seq == 0 }

func appendID(dst []byte, id streamID) []byte {
	dst = strconv.AppendUint(dst, id.ms, 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, id.seq, 10)
}

func rawID(b []byte) streamID {
	return streamID{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
}
