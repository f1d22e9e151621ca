package verify

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
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

// cmpFieldTTLs compares the per-field TTLs of a hash whose fields and values
// are equal (absolute expiry times, so the moment of each read does not
// matter). A target that cannot hold field TTLs is told apart: its
// difference is a loss that on_unsupported = "drop" accepted, not a bug.
func (e *engine) cmpFieldTTLs(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (Kind, string, error) {
	cur, items := scanReply(kc.sh[1].Val())
	var lost int64
	var firstLost string
	for {
		var fields []any
		for i := 0; i < len(items); i += 2 {
			fields = append(fields, items[i])
		}
		if len(fields) > 0 {
			args := append([]any{"HPEXPIRETIME", kc.key, "FIELDS", len(fields)}, fields...)
			sv, err := e.src.do(ctx, sc, args...)
			if err != nil {
				return soft2(wrapReply(err))
			}
			st := list1(sv)
			if !e.dst.fieldTTL {
				for i, x := range st {
					if num(x) > 0 {
						if lost++; firstLost == "" && i < len(fields) {
							firstLost = str(fields[i])
						}
					}
				}
			} else {
				dv, err := e.dst.do(ctx, dc, args...)
				if err != nil {
					return soft2(wrapReply(err))
				}
				dt := list1(dv)
				for i := range fields {
					if i >= len(st) || i >= len(dt) {
						break
					}
					if d := cmpFieldExpiry(num(st[i]), num(dt[i]), e.o.TTLTolerance); d != "" {
						return KindTTL, fmt.Sprintf("field %s: %s", quote(str(fields[i])), d), nil
					}
				}
			}
		}
		if cur == "0" {
			break
		}
		v, err := e.src.do(ctx, sc, "HSCAN", kc.key, cur, "COUNT", pageSize)
		if err != nil {
			return soft2(wrapReply(err))
		}
		cur, items = scanReply(v)
	}
	if lost > 0 {
		return KindLostFieldTTL, fmt.Sprintf("%d field TTL(s) on the source (field %s first) that the target cannot hold", lost, quote(firstLost)), nil
	}
	return "", "", nil
}

// soft2 is soft for a check that also returns a kind: a reply error is a
// value difference while writes arrive, anything else ends the run.
func soft2(err error) (Kind, string, error) {
	d, err := soft(err)
	if d != "" {
		return KindValue, d, err
	}
	return "", "", err
}

// cmpFieldExpiry compares two HPEXPIRETIME answers (unix ms; -1 no TTL, -2
// no such field).
func cmpFieldExpiry(s, d int64, tol time.Duration) string {
	switch {
	case s == d:
		return ""
	case s == -2 || d == -2:
		return "expired while being read"
	case s == -1:
		return fmt.Sprintf("target has a TTL until %s, source has none", time.UnixMilli(d).UTC().Format(time.RFC3339))
	case d == -1:
		return fmt.Sprintf("source has a TTL until %s, target has none", time.UnixMilli(s).UTC().Format(time.RFC3339))
	}
	delta := s - d
	if delta < 0 {
		delta = -delta
	}
	if delta <= tol.Milliseconds() {
		return ""
	}
	return fmt.Sprintf("TTL until %s on source, %s on target (%s apart, tolerance %s)",
		time.UnixMilli(s).UTC().Format(time.RFC3339), time.UnixMilli(d).UTC().Format(time.RFC3339), fmtMS(delta), tol)
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

func (e *engine) cmpString(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (string, error) {
	sl, dl := intOf(kc.sh[0]), intOf(kc.dh[0])
	if e.o.Mode == ModeKeys {
		if sl != dl {
			return fmt.Sprintf("length %d != %d bytes", sl, dl), nil
		}
		return "", nil
	}
	a, b := text(kc.sh[1]), text(kc.dh[1])
	if sl != dl {
		if sl <= shortLen && dl <= shortLen && int64(len(a)) == sl && int64(len(b)) == dl {
			return fmt.Sprintf("%s != %s", quote(a), quote(b)), nil
		}
		return fmt.Sprintf("length %d != %d bytes", sl, dl), nil
	}
	off := int64(0)
	for {
		if a != b {
			if sl <= shortLen {
				return fmt.Sprintf("%s != %s", quote(a), quote(b)), nil
			}
			i := firstDiff(a, b)
			return fmt.Sprintf("differs at byte %d of %d: %s != %s", off+int64(i), sl, excerpt(a, i), excerpt(b, i)), nil
		}
		off += int64(len(a))
		if off >= sl || len(a) == 0 {
			return "", nil
		}
		sr, dr, err := e.pair(ctx, sc, dc, one("GETRANGE", kc.key, off, off+strChunk-1))
		if err != nil {
			return soft(err)
		}
		a, b = text(sr[0]), text(dr[0])
	}
}

func (e *engine) cmpList(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (string, error) {
	sl, dl := intOf(kc.sh[0]), intOf(kc.dh[0])
	if sl != dl {
		return fmt.Sprintf("length %d != %d elements", sl, dl), nil
	}
	if e.o.Mode == ModeKeys {
		return "", nil
	}
	sp, dp := list(kc.sh[1]), list(kc.dh[1])
	start := int64(0)
	for {
		for i := 0; i < min(len(sp), len(dp)); i++ {
			if a, b := str(sp[i]), str(dp[i]); a != b {
				return fmt.Sprintf("element %d: %s != %s", start+int64(i), quote(a), quote(b)), nil
			}
		}
		if len(sp) != len(dp) {
			return "changed while being read (list length)", nil
		}
		start += int64(len(sp))
		if start >= sl || len(sp) == 0 {
			return "", nil
		}
		sr, dr, err := e.pair(ctx, sc, dc, one("LRANGE", kc.key, start, start+pageSize-1))
		if err != nil {
			return soft(err)
		}
		sp, dp = list(sr[0]), list(dr[0])
	}
}

var (
	scanCmd = map[string]string{"set": "SSCAN", "zset": "ZSCAN", "hash": "HSCAN"}
	noun    = map[string]string{"set": "member", "zset": "member", "hash": "field"}
)

// cmpScanned compares a set, zset or hash. When both sides fit in their
// first SCAN page the two are compared whole; otherwise the source is read
// page by page and each page looked up on the target: with equal
// cardinalities, source ⊆ target means equal.
func (e *engine) cmpScanned(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (string, error) {
	typ := kc.typ
	sl, dl := intOf(kc.sh[0]), intOf(kc.dh[0])
	if sl != dl {
		return fmt.Sprintf("%d != %d %ss", sl, dl, noun[typ]), nil
	}
	if e.o.Mode == ModeKeys {
		return "", nil
	}
	scur, sitems := scanReply(kc.sh[1].Val())
	dcur, ditems := scanReply(kc.dh[1].Val())
	if scur == "0" && dcur == "0" {
		return diffMaps(typ, toMap(typ, sitems), toMap(typ, ditems)), nil
	}
	cur, items := scur, sitems
	for {
		if d, err := e.lookup(ctx, dc, typ, kc.key, items); d != "" || err != nil {
			return d, err
		}
		if cur == "0" {
			return "", nil
		}
		v, err := e.src.do(ctx, sc, scanCmd[typ], kc.key, cur, "COUNT", pageSize)
		if err != nil {
			return soft(wrapReply(err))
		}
		cur, items = scanReply(v)
	}
}

func wrapReply(err error) error {
	if isReplyErr(err) {
		return &replyErr{err}
	}
	return err
}

// lookup checks that the members (with their values) of one source page are
// on the target.
func (e *engine) lookup(ctx context.Context, dc redis.UniversalClient, typ, key string, items []any) (string, error) {
	var names, vals []string
	if typ == "set" {
		for _, it := range items {
			names = append(names, str(it))
		}
	} else {
		for i := 0; i+1 < len(items); i += 2 {
			names = append(names, str(items[i]))
			vals = append(vals, str(items[i+1]))
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	got, err := e.targetValues(ctx, dc, typ, key, names)
	if err != nil {
		return soft(wrapReply(err))
	}
	for i, n := range names {
		g := got[i]
		switch {
		case g == nil:
			return fmt.Sprintf("%s %s missing on target", noun[typ], quote(n)), nil
		case typ == "hash" && *g != vals[i]:
			return fmt.Sprintf("field %s: %s != %s", quote(n), quote(vals[i]), quote(*g)), nil
		case typ == "zset" && !sameScore(vals[i], *g):
			return fmt.Sprintf("member %s: score %s != %s", quote(n), fmtScore(vals[i]), fmtScore(*g)), nil
		}
	}
	return "", nil
}

// targetValues returns, for each name, its value on the target (set: "")
// or nil when it is not there.
func (e *engine) targetValues(ctx context.Context, dc redis.UniversalClient, typ, key string, names []string) ([]*string, error) {
	out := make([]*string, len(names))
	args := make([]any, 0, len(names)+2)
	multi := map[string]string{"hash": "HMGET", "set": "SMISMEMBER", "zset": "ZMSCORE"}[typ]
	if typ == "hash" || !e.dst.noMulti.Load() {
		args = append(args, multi, key)
		for _, n := range names {
			args = append(args, n)
		}
		v, err := e.dst.do(ctx, dc, args...)
		if err == nil {
			for i, x := range list1(v) {
				if i >= len(out) {
					break
				}
				switch {
				case x == nil:
				case typ == "set":
					if n, _ := x.(int64); n == 1 {
						out[i] = new(string)
					}
				default:
					s := str(x)
					out[i] = &s
				}
			}
			return out, nil
		}
		if !strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			return nil, err
		}
		e.dst.noMulti.Store(true) // Redis < 6.2
	}
	p := dc.Pipeline()
	cmds := make([]*redis.Cmd, len(names))
	for i, n := range names {
		if typ == "set" {
			cmds[i] = p.Do(ctx, "SISMEMBER", key, n)
		} else {
			cmds[i] = p.Do(ctx, "ZSCORE", key, n)
		}
	}
	if err := e.dst.exec(ctx, p); err != nil {
		return nil, err
	}
	for i, c := range cmds {
		if err := c.Err(); err == redis.Nil {
			continue
		} else if err != nil {
			return nil, err
		}
		if typ == "set" {
			if intOf(c) == 1 {
				out[i] = new(string)
			}
			continue
		}
		s := text(c)
		out[i] = &s
	}
	return out, nil
}

func sameScore(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && (x == y || math.IsNaN(x) && math.IsNaN(y))
}

// fmtScore shows a score as the shortest decimal that reads back the same.
func fmtScore(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return s
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func toMap(typ string, items []any) map[string]string {
	m := map[string]string{}
	if typ == "set" {
		for _, it := range items {
			m[str(it)] = ""
		}
		return m
	}
	for i := 0; i+1 < len(items); i += 2 {
		m[str(items[i])] = str(items[i+1])
	}
	return m
}

// diffMaps describes the first difference between two whole sets, zsets or
// hashes (names in order), or "".
func diffMaps(typ string, s, d map[string]string) string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dv, ok := d[n]
		sv := s[n]
		switch {
		case !ok:
			return fmt.Sprintf("%s %s missing on target", noun[typ], quote(n))
		case typ == "hash" && sv != dv:
			return fmt.Sprintf("field %s: %s != %s", quote(n), quote(sv), quote(dv))
		case typ == "zset" && !sameScore(sv, dv):
			return fmt.Sprintf("member %s: score %s != %s", quote(n), fmtScore(sv), fmtScore(dv))
		}
	}
	var extra []string
	for n := range d {
		if _, ok := s[n]; !ok {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Sprintf("%s %s not on source", noun[typ], quote(extra[0]))
	}
	return ""
}

func (e *engine) cmpStream(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (string, error) {
	sl, dl := intOf(kc.sh[0]), intOf(kc.dh[0])
	if sl != dl {
		return fmt.Sprintf("length %d != %d entries", sl, dl), nil
	}
	if e.o.Mode == ModeKeys {
		return "", nil
	}
	si, di := kv(kc.sh[1].Val()), kv(kc.dh[1].Val())
	if a, b := str(si["last-generated-id"]), str(di["last-generated-id"]); a != b {
		return fmt.Sprintf("last-generated-id %s != %s", a, b), nil
	}
	// entries, page by page
	sp, dp := list(kc.sh[2]), list(kc.dh[2])
	want := headPage
	for {
		n := min(len(sp), len(dp))
		for i := 0; i < n; i++ {
			sid, sf := entry(sp[i])
			did, df := entry(dp[i])
			if sid != did {
				if lessID(sid, did) {
					return fmt.Sprintf("entry %s missing on target", sid), nil
				}
				return fmt.Sprintf("entry %s not on source", did), nil
			}
			if sf != df {
				return fmt.Sprintf("entry %s: %s != %s", sid, shorten(sf), shorten(df)), nil
			}
		}
		switch {
		case len(sp) > n:
			id, _ := entry(sp[n])
			return fmt.Sprintf("entry %s missing on target", id), nil
		case len(dp) > n:
			id, _ := entry(dp[n])
			return fmt.Sprintf("entry %s not on source", id), nil
		}
		if len(sp) < want {
			break
		}
		want = pageSize
		last, _ := entry(sp[len(sp)-1])
		sr, dr, err := e.pair(ctx, sc, dc, one("XRANGE", kc.key, nextID(last), "+", "COUNT", pageSize))
		if err != nil {
			return soft(err)
		}
		sp, dp = list(sr[0]), list(dr[0])
	}
	// consumer groups
	sg, dg := groups(kc.sh[3].Val()), groups(kc.dh[3].Val())
	names := make([]string, 0, len(sg))
	for n := range sg {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d, ok := dg[n]
		switch {
		case !ok:
			return fmt.Sprintf("group %s missing on target", quote(n)), nil
		case sg[n] != d:
			return fmt.Sprintf("group %s: last-delivered-id %s != %s", quote(n), sg[n], d), nil
		}
	}
	var extra []string
	for n := range dg {
		if _, ok := sg[n]; !ok {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Sprintf("group %s not on source", quote(extra[0])), nil
	}
	for _, g := range names {
		if d, err := e.cmpGroup(ctx, kc.key, g, sc, dc); d != "" || err != nil {
			return d, err
		}
	}
	return "", nil
}

// cmpGroup compares the consumers (with their pending counts) and the
// pending entries (ids and owners) of one consumer group.
func (e *engine) cmpGroup(ctx context.Context, key, group string, sc, dc redis.UniversalClient) (string, error) {
	gq := "group " + quote(group)
	sr, dr, err := e.pair(ctx, sc, dc,
		one("XINFO", "CONSUMERS", key, group),
		one("XPENDING", key, group, "-", "+", pageSize))
	if err != nil {
		return soft(err)
	}
	consumers := func(v any) map[string]int64 {
		m := map[string]int64{}
		for _, c := range list1(v) {
			f := kv(c)
			m[str(f["name"])] = num(f["pending"])
		}
		return m
	}
	scons, dcons := consumers(sr[0].Val()), consumers(dr[0].Val())
	cn := make([]string, 0, len(scons))
	for n := range scons {
		cn = append(cn, n)
	}
	sort.Strings(cn)
	for _, n := range cn {
		d, ok := dcons[n]
		switch {
		case !ok:
			return fmt.Sprintf("%s: consumer %s missing on target", gq, quote(n)), nil
		case scons[n] != d:
			return fmt.Sprintf("%s: consumer %s has %d pending != %d", gq, quote(n), scons[n], d), nil
		}
	}
	var extra []string
	for n := range dcons {
		if _, ok := scons[n]; !ok {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Sprintf("%s: consumer %s not on source", gq, quote(extra[0])), nil
	}
	sp, dp := list(sr[1]), list(dr[1])
	for {
		n := min(len(sp), len(dp))
		for i := 0; i < n; i++ {
			sid, sown := pel(sp[i])
			did, down := pel(dp[i])
			if sid != did {
				if lessID(sid, did) {
					return fmt.Sprintf("%s: pending entry %s missing on target", gq, sid), nil
				}
				return fmt.Sprintf("%s: pending entry %s not on source", gq, did), nil
			}
			if sown != down {
				return fmt.Sprintf("%s: pending entry %s owned by %s != %s", gq, sid, quote(sown), quote(down)), nil
			}
		}
		switch {
		case len(sp) > n:
			id, _ := pel(sp[n])
			return fmt.Sprintf("%s: pending entry %s missing on target", gq, id), nil
		case len(dp) > n:
			id, _ := pel(dp[n])
			return fmt.Sprintf("%s: pending entry %s not on source", gq, id), nil
		}
		if len(sp) < pageSize {
			return "", nil
		}
		last, _ := pel(sp[len(sp)-1])
		sr, dr, err := e.pair(ctx, sc, dc, one("XPENDING", key, group, nextID(last), "+", pageSize))
		if err != nil {
			return soft(err)
		}
		sp, dp = list(sr[0]), list(dr[0])
	}
}

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

func text(c *redis.Cmd) string {
	if c == nil {
		return ""
	}
	return str(c.Val())
}

func intOf(c *redis.Cmd) int64 { return num(c.Val()) }

func list(c *redis.Cmd) []any { return list1(c.Val()) }

func list1(v any) []any {
	a, _ := v.([]any)
	return a
}

func str(x any) string {
	switch v := x.(type) {
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case []byte:
		return string(v)
	}
	return fmt.Sprint(x)
}

func num(x any) int64 {
	switch v := x.(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// kv turns a flat [k1 v1 k2 v2 ...] array (or a map) into a map.
func kv(x any) map[string]any {
	m := map[string]any{}
	switch a := x.(type) {
	case []any:
		for i := 0; i+1 < len(a); i += 2 {
			m[str(a[i])] = a[i+1]
		}
	case map[any]any:
		for k, v := range a {
			m[str(k)] = v
		}
	}
	return m
}

// scanReply splits a SCAN-family reply into the cursor and the items.
func scanReply(v any) (string, []any) {
	a := list1(v)
	if len(a) != 2 {
		return "0", nil
	}
	return str(a[0]), list1(a[1])
}

// entry returns a stream entry's id and its fields, quoted and joined.
func entry(x any) (string, string) {
	a := list1(x)
	if len(a) < 2 {
		return "", ""
	}
	var b strings.Builder
	for i, f := range list1(a[1]) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(str(f)))
	}
	return str(a[0]), b.String()
}

// pel returns a pending entry's id and owner.
func pel(x any) (string, string) {
	a := list1(x)
	if len(a) < 2 {
		return "", ""
	}
	return str(a[0]), str(a[1])
}

// groups maps each consumer group's name to its last-delivered-id.
func groups(v any) map[string]string {
	m := map[string]string{}
	for _, g := range list1(v) {
		f := kv(g)
		m[str(f["name"])] = str(f["last-delivered-id"])
	}
	return m
}

func parseID(id string) (ms, seq uint64) {
	a, b, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(a, 10, 64)
	seq, _ = strconv.ParseUint(b, 10, 64)
	return ms, seq
}

func lessID(a, b string) bool {
	am, as := parseID(a)
	bm, bs := parseID(b)
	return am < bm || am == bm && as < bs
}

// nextID is the smallest stream id after id (exclusive ranges without the
// "(" syntax of Redis 6.2).
func nextID(id string) string {
	ms, seq := parseID(id)
	if seq == math.MaxUint64 {
		return strconv.FormatUint(ms+1, 10) + "-0"
	}
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq+1, 10)
}

// --- readable details ---

const shortLen = 64

// quote quotes s, eliding the middle of long values.
func quote(s string) string {
	if len(s) <= shortLen {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:40]) + fmt.Sprintf("…(%d bytes)…", len(s)) + strconv.Quote(s[len(s)-12:])
}

// shorten cuts an already readable text.
func shorten(s string) string {
	if len(s) <= 2*shortLen {
		return s
	}
	return s[:2*shortLen] + fmt.Sprintf("…(%d bytes)", len(s))
}

func firstDiff(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// excerpt quotes a few bytes of s around i.
func excerpt(s string, i int) string {
	from, to := max(0, i-16), min(len(s), i+32)
	q := strconv.Quote(s[from:to])
	if from > 0 {
		q = "…" + q
	}
	if to < len(s) {
		q += "…"
	}
	return q
}

// fmtMS formats milliseconds: "250ms", "1.5s", "3600s".
func fmtMS(ms int64) string {
	switch a := max(ms, -ms); {
	case a < 1000:
		return strconv.FormatInt(ms, 10) + "ms"
	case a < 10_000:
		return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + "s"
	}
	return strconv.FormatInt((ms+500)/1000, 10) + "s"
}
