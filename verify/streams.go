// Streams: entries, and consumer groups with their pending entries.

package verify

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

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
