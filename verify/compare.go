package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

const (
	headPage  = 128       // elements of each collection read with the batch
	pageSize  = 500       // elements per further page of a big collection (SCAN COUNT, LRANGE, XRANGE, XPENDING)
	headChunk = 64 << 10  // bytes of a string read with the batch
	strChunk  = 512 << 10 // bytes per further read of a big string
)

// keyCheck is one key of a batch being compared.
type keyCheck struct {
	key        string
	typ        string // source type ("none": not on the source)
	styp, sttl *redis.Cmd
	dtyp, dttl *redis.Cmd
	sh, dh     []*redis.Cmd // first reads of the value, same commands on both sides
	sAt, dAt   time.Time    // when the source's / target's TTL was read
}

// compareKeys compares keys of source db db with the target db it maps to.
func (e *engine) compareKeys(ctx context.Context, db int, keys []string) ([]Diff, error) {
	tdb := e.mapDB(db)
	sc, err := e.src.client(db)
	if err != nil {
		return nil, err
	}
	dc, err := e.dst.client(tdb)
	if err != nil {
		return nil, err
	}
	full := e.o.Mode != ModeKeys
	ks := make([]*keyCheck, len(keys))
	// 1: the source's types (and TTLs) decide what is read next.
	p := sc.Pipeline()
	for i, k := range keys {
		kc := &keyCheck{key: k}
		kc.styp = p.Do(ctx, "TYPE", k)
		if full {
			kc.sttl = p.Do(ctx, "PTTL", k)
		}
		ks[i] = kc
	}
	sAt, err := e.src.execAt(ctx, p)
	if err != nil {
		return nil, err
	}
	for _, kc := range ks {
		kc.typ = text(kc.styp)
		kc.sAt = sAt
	}
	// 2: the values on both sides at once; the target's type and TTL too.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		p := sc.Pipeline()
		for _, kc := range ks {
			if kc.typ != "none" {
				kc.sh = e.head(gctx, p, kc.typ, kc.key)
			}
		}
		return e.src.exec(gctx, p)
	})
	g.Go(func() error {
		p := dc.Pipeline()
		for _, kc := range ks {
			kc.dtyp = p.Do(gctx, "TYPE", kc.key)
			if full {
				kc.dttl = p.Do(gctx, "PTTL", kc.key)
			}
			if kc.typ != "none" {
				kc.dh = e.head(gctx, p, kc.typ, kc.key)
			}
		}
		at, err := e.dst.execAt(gctx, p)
		for _, kc := range ks {
			kc.dAt = at
		}
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []Diff
	for _, kc := range ks {
		kind, detail, err := e.checkKey(ctx, db, tdb, kc, sc, dc)
		if err != nil {
			return nil, err
		}
		if kind != "" {
			out = append(out, Diff{DB: db, TargetDB: tdb, Key: kc.key, Kind: kind, Detail: detail})
		}
	}
	return out, nil
}

// head queues the first reads of a key's value (keys mode: its length).
func (e *engine) head(ctx context.Context, p redis.Pipeliner, typ, key string) []*redis.Cmd {
	do := func(args ...any) *redis.Cmd { return p.Do(ctx, args...) }
	if e.o.Mode == ModeKeys {
		switch typ {
		case "string":
			return []*redis.Cmd{do("STRLEN", key)}
		case "list":
			return []*redis.Cmd{do("LLEN", key)}
		case "set":
			return []*redis.Cmd{do("SCARD", key)}
		case "zset":
			return []*redis.Cmd{do("ZCARD", key)}
		case "hash":
			return []*redis.Cmd{do("HLEN", key)}
		case "stream":
			return []*redis.Cmd{do("XLEN", key)}
		}
		return nil
	}
	switch typ {
	case "string":
		return []*redis.Cmd{do("STRLEN", key), do("GETRANGE", key, 0, headChunk-1)}
	case "list":
		return []*redis.Cmd{do("LLEN", key), do("LRANGE", key, 0, headPage-1)}
	case "set":
		return []*redis.Cmd{do("SCARD", key), do("SSCAN", key, 0, "COUNT", headPage)}
	case "zset":
		return []*redis.Cmd{do("ZCARD", key), do("ZSCAN", key, 0, "COUNT", headPage)}
	case "hash":
		return []*redis.Cmd{do("HLEN", key), do("HSCAN", key, 0, "COUNT", headPage)}
	case "stream":
		return []*redis.Cmd{do("XLEN", key), do("XINFO", "STREAM", key), do("XRANGE", key, "-", "+", "COUNT", headPage), do("XINFO", "GROUPS", key)}
	}
	return []*redis.Cmd{do("DUMP", key)}
}

// checkKey decides whether a key differs: the kind and a readable detail,
// or "" when it is the same on both sides.
func (e *engine) checkKey(ctx context.Context, db, tdb int, kc *keyCheck, sc, dc redis.UniversalClient) (Kind, string, error) {
	if err := kc.styp.Err(); err != nil {
		return KindValue, changed(err), nil
	}
	if err := kc.dtyp.Err(); err != nil {
		return KindValue, changed(err), nil
	}
	dtyp := text(kc.dtyp)
	switch {
	case kc.typ == "none" && dtyp == "none":
		return "", "", nil
	case kc.typ == "none":
		// Gone from the source since it was listed. With several source
		// dbs mapped to this target db the key may live in another one:
		// the scan of the target decides.
		if p := e.preimage(tdb); len(p) != 1 || p[0] != db {
			return "", "", nil
		}
		return KindExtra, "not on source (target has a " + dtyp + ")", nil
	case dtyp == "none":
		return KindMissing, "not on target (source has a " + kc.typ + ")", nil
	case kc.typ != dtyp:
		return KindType, fmt.Sprintf("source has a %s, target a %s", kc.typ, dtyp), nil
	}
	detail, err := e.compareValue(ctx, kc, sc, dc)
	if err != nil {
		return "", "", err
	}
	if detail != "" {
		return KindValue, detail, nil
	}
	if e.o.Mode != ModeKeys {
		if d := e.compareTTL(kc); d != "" {
			return KindTTL, d, nil
		}
		if kc.typ == "hash" && e.src.fieldTTL {
			return e.cmpFieldTTLs(ctx, kc, sc, dc)
		}
	}
	return "", "", nil
}

// changed is the detail of a key that changed between two reads (a
// transient difference while writes arrive).
func changed(err error) string { return "changed while being read (" + err.Error() + ")" }

func (e *engine) compareTTL(kc *keyCheck) string {
	s, err1 := kc.sttl.Int64()
	d, err2 := kc.dttl.Int64()
	switch {
	case err1 != nil:
		return changed(err1)
	case err2 != nil:
		return changed(err2)
	case s == -1 && d == -1:
		return ""
	case s == -2 || d == -2:
		return "expired while being read"
	case s == -1:
		return fmt.Sprintf("target has a TTL of %s, source has none", fmtMS(d))
	case d == -1:
		return fmt.Sprintf("source has a TTL of %s, target has none", fmtMS(s))
	}
	// Compare the expiry instants: the two sides were read at different
	// times (a throttled run may wait between them).
	delta := kc.sAt.UnixMilli() + s - (kc.dAt.UnixMilli() + d)
	if delta < 0 {
		delta = -delta
	}
	if delta <= e.o.TTLTolerance.Milliseconds() {
		return ""
	}
	return fmt.Sprintf("TTL %s on source, %s on target (%s apart, tolerance %s)", fmtMS(s), fmtMS(d), fmtMS(delta), e.o.TTLTolerance)
}

func (e *engine) compareValue(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (string, error) {
	for i := range kc.sh {
		if err := kc.sh[i].Err(); err != nil && err != redis.Nil {
			return changed(err), nil
		}
		if err := kc.dh[i].Err(); err != nil && err != redis.Nil {
			return changed(err), nil
		}
	}
	switch kc.typ {
	case "string":
		return e.cmpString(ctx, kc, sc, dc)
	case "list":
		return e.cmpList(ctx, kc, sc, dc)
	case "set", "zset", "hash":
		return e.cmpScanned(ctx, kc, sc, dc)
	case "stream":
		return e.cmpStream(ctx, kc, sc, dc)
	}
	if e.o.Mode == ModeKeys {
		return "", nil
	}
	a, b := text(kc.sh[0]), text(kc.dh[0])
	if a != b {
		return fmt.Sprintf("DUMP payloads differ (%d != %d bytes)", len(a), len(b)), nil
	}
	return "", nil
}

// pair runs the same commands as one pipeline on each side, both at once.
// A Redis error reply is returned as a *replyErr.
func (e *engine) pair(ctx context.Context, sc, dc redis.UniversalClient, cmds ...[]any) (sr, dr []*redis.Cmd, err error) {
	g, gctx := errgroup.WithContext(ctx)
	run := func(s *side, c redis.UniversalClient, out *[]*redis.Cmd) func() error {
		return func() error {
			p := c.Pipeline()
			for _, args := range cmds {
				*out = append(*out, p.Do(gctx, args...))
			}
			return s.exec(gctx, p)
		}
	}
	g.Go(run(e.src, sc, &sr))
	g.Go(run(e.dst, dc, &dr))
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	for _, list := range [][]*redis.Cmd{sr, dr} {
		for _, c := range list {
			if err := c.Err(); err != nil && err != redis.Nil {
				return nil, nil, &replyErr{err}
			}
		}
	}
	return sr, dr, nil
}

// replyErr is Redis's error reply to a read: the key changed under us.
type replyErr struct{ err error }

func (r *replyErr) Error() string { return r.err.Error() }

// soft turns a reply error into a "changed" detail and passes other errors on.
func soft(err error) (string, error) {
	if r, ok := err.(*replyErr); ok {
		return changed(r.err), nil
	}
	return "", err
}

func one(args ...any) []any { return args }

// checkExtras returns the keys of target db tdb that are on the target and
// in none of the source dbs that map to it.
func (e *engine) checkExtras(ctx context.Context, tdb int, keys []string) ([]Diff, error) {
	absent := make([]bool, len(keys))
	for i := range absent {
		absent[i] = true
	}
	for _, sdb := range e.preimage(tdb) {
		sc, err := e.src.client(sdb)
		if err != nil {
			return nil, err
		}
		p := sc.Pipeline()
		cmds := make([]*redis.Cmd, len(keys))
		for i, k := range keys {
			if absent[i] {
				cmds[i] = p.Do(ctx, "EXISTS", k)
			}
		}
		if err := e.src.exec(ctx, p); err != nil {
			return nil, err
		}
		for i, c := range cmds {
			if c != nil && (c.Err() != nil || intOf(c) > 0) {
				absent[i] = false
			}
		}
	}
	dc, err := e.dst.client(tdb)
	if err != nil {
		return nil, err
	}
	p := dc.Pipeline()
	types := make([]*redis.Cmd, len(keys))
	for i, k := range keys {
		if absent[i] {
			types[i] = p.Do(ctx, "TYPE", k)
		}
	}
	if err := e.dst.exec(ctx, p); err != nil {
		return nil, err
	}
	var out []Diff
	db := e.extraDB(tdb)
	for i, c := range types {
		if c == nil || c.Err() != nil {
			continue
		}
		if t := text(c); t != "none" {
			out = append(out, Diff{DB: db, TargetDB: tdb, Key: keys[i], Kind: KindExtra, Detail: "not on source (target has a " + t + ")"})
		}
	}
	return out, nil
}

// --- replies (RESP2 through go-redis: string, int64, []any, nil) ---

// --- readable details ---
