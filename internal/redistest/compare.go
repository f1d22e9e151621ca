package redistest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const maxDiffsPerKey = 5

// Diff lists the differences between d (the source) and other (the target), one
// readable line each, in (db, key) order; empty when both hold the same data.
// Expiry times may differ by up to ttlTolerance.
//
//	db0 key "a": missing on target (string)
//	db0 key "b": extra on target (hash)
//	db0 key "h": hash field "f": "1" != "2"
//	db0 key "a": ttl 3600s vs none
func (d *Digest) Diff(other *Digest, ttlTolerance time.Duration) []string {
	var out []string
	out = append(out, diffFunctions(d.Functions, other.Functions)...)
	ids := make([]KeyDigest, 0, len(d.Keys)+len(other.Keys))
	for _, k := range d.Keys {
		ids = append(ids, k)
	}
	for id, k := range other.Keys {
		if _, ok := d.Keys[id]; !ok {
			ids = append(ids, k)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		if ids[i].DB != ids[j].DB {
			return ids[i].DB < ids[j].DB
		}
		return ids[i].Key < ids[j].Key
	})
	for _, id := range ids {
		key := digestKey(id.DB, id.Key)
		a, inA := d.Keys[key]
		b, inB := other.Keys[key]
		pre := fmt.Sprintf("db%d key %s: ", id.DB, strconv.Quote(id.Key))
		switch {
		case !inB:
			out = append(out, pre+"missing on target ("+a.Type+")")
			continue
		case !inA:
			out = append(out, pre+"extra on target ("+b.Type+")")
			continue
		case a.Type != b.Type:
			out = append(out, pre+"type "+a.Type+" != "+b.Type)
			continue
		}
		if l := diffTTL(a, b, ttlTolerance); l != "" {
			out = append(out, pre+l)
		}
		if a.ValueHash == b.ValueHash {
			continue
		}
		lines := diffValue(a, b)
		if len(lines) > maxDiffsPerKey {
			lines = append(lines[:maxDiffsPerKey], fmt.Sprintf("… and %d more differences", len(lines)-maxDiffsPerKey))
		}
		for _, l := range lines {
			out = append(out, pre+l)
		}
	}
	return out
}

// fmtTTL: whole seconds from 10 s on ("3600s"), milliseconds below ("1.5s", "250ms").
func fmtTTL(d time.Duration) string {
	switch a := d.Abs(); {
	case a < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case a < 10*time.Second:
		return strconv.FormatFloat(d.Round(time.Millisecond).Seconds(), 'f', -1, 64) + "s"
	}
	return strconv.FormatInt(int64(d.Round(time.Second)/time.Second), 10) + "s"
}

func diffTTL(a, b KeyDigest, tol time.Duration) string {
	switch {
	case a.ExpireAt == 0 && b.ExpireAt == 0:
		return ""
	case b.ExpireAt == 0:
		return "ttl " + fmtTTL(a.TTL) + " vs none"
	case a.ExpireAt == 0:
		return "ttl none vs " + fmtTTL(b.TTL)
	}
	delta := time.Duration(b.ExpireAt-a.ExpireAt) * time.Millisecond
	if delta.Abs() <= tol {
		return ""
	}
	return fmt.Sprintf("ttl %s vs %s (expiry times differ by %s)", fmtTTL(a.TTL), fmtTTL(b.TTL), fmtTTL(delta))
}

func diffFunctions(a, b map[string]string) []string {
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []string
	for _, n := range sorted {
		ca, inA := a[n]
		cb, inB := b[n]
		switch {
		case !inB:
			out = append(out, fmt.Sprintf("function library %q: missing on target", n))
		case !inA:
			out = append(out, fmt.Sprintf("function library %q: extra on target", n))
		case ca != cb:
			out = append(out, fmt.Sprintf("function library %q: code %s != %s", n, short(ca), short(cb)))
		}
	}
	return out
}

// short quotes s, eliding the middle of long values.
func short(s string) string {
	const max = 80
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:max/2]) + fmt.Sprintf("…(%d bytes)…", len(s)) + strconv.Quote(s[len(s)-max/4:])
}

func diffValue(a, b KeyDigest) []string {
	if a.Fields == nil || b.Fields == nil {
		return []string{fmt.Sprintf("%s value differs (%d vs %d elements; too big to list)", a.Type, a.Len, b.Len)}
	}
	switch a.Type {
	case "string":
		va, vb := a.Fields[0].Value, b.Fields[0].Value
		if len(va) <= 80 && len(vb) <= 80 {
			return []string{fmt.Sprintf("value %q != %q", va, vb)}
		}
		i := 0
		for i < len(va) && i < len(vb) && va[i] == vb[i] {
			i++
		}
		from := max(0, i-16)
		return []string{fmt.Sprintf("value differs at byte %d (%d vs %d bytes): …%s vs …%s",
			i, len(va), len(vb), short(va[from:min(len(va), i+24)]), short(vb[from:min(len(vb), i+24)]))}
	case "list":
		var out []string
		if len(a.Fields) != len(b.Fields) {
			out = append(out, fmt.Sprintf("list length %d != %d", len(a.Fields), len(b.Fields)))
		}
		return append(out, diffFields(a.Fields, b.Fields, func(n string) string { return "list element " + n }, quoted)...)
	case "set":
		return diffFields(a.Fields, b.Fields, func(n string) string { return "set member " + short(n) }, nil)
	case "zset":
		return diffFields(a.Fields, b.Fields, func(n string) string { return "zset member " + short(n) },
			func(l, va, vb string) string { return l + ": score " + va + " != " + vb })
	case "hash":
		return diffFields(a.Fields, b.Fields, func(n string) string { return "hash field " + short(n) }, quoted)
	case "stream":
		return diffFields(a.Fields, b.Fields, func(n string) string { return "stream " + n },
			func(l, va, vb string) string { return l + ": " + va + " != " + vb })
	}
	return []string{a.Type + " value differs"}
}

func quoted(l, va, vb string) string { return l + ": " + short(va) + " != " + short(vb) }

// diffFields compares two canonical field lists by name: changed values (when
// changed is not nil), names missing on the target, then names only on the target.
func diffFields(a, b []Field, label func(string) string, changed func(label, va, vb string) string) []string {
	bm := make(map[string]string, len(b))
	for _, f := range b {
		bm[f.Name] = f.Value
	}
	am := make(map[string]bool, len(a))
	var out []string
	for _, f := range a {
		am[f.Name] = true
		v, ok := bm[f.Name]
		switch {
		case !ok:
			out = append(out, label(f.Name)+": missing on target")
		case v != f.Value && changed != nil:
			out = append(out, changed(label(f.Name), f.Value, v))
		}
	}
	for _, f := range b {
		if !am[f.Name] {
			out = append(out, label(f.Name)+": extra on target")
		}
	}
	return out
}

// CompareOptions configure AssertSameDataOpts / Compare.
type CompareOptions struct {
	SrcCluster, DstCluster bool
	// DBMap maps source dbs to target dbs before comparing; source dbs not in a
	// non-nil map are not compared (map a db to itself to keep it).
	DBMap map[int]int
	// TTLTolerance is the allowed difference of expiry times (0: 2 s).
	TTLTolerance time.Duration
	// Wait retries the comparison until the data is equal or Wait has passed
	// (for a sync that is still catching up); 0 compares once.
	Wait time.Duration
	// IgnoreFunctions leaves FUNCTION libraries out of the comparison.
	IgnoreFunctions bool
}

// Compare digests src and dst and returns the differences (see Digest.Diff) and
// both digests.
func Compare(ctx context.Context, src, dst []string, opt CompareOptions) (diffs []string, sd, dd *Digest, err error) {
	if sd, err = TakeDigest(ctx, src, opt.SrcCluster); err != nil {
		return nil, nil, nil, fmt.Errorf("source: %w", err)
	}
	if dd, err = TakeDigest(ctx, dst, opt.DstCluster); err != nil {
		return nil, nil, nil, fmt.Errorf("target: %w", err)
	}
	if opt.DBMap != nil {
		if sd, err = sd.MapDBs(opt.DBMap); err != nil {
			return nil, nil, nil, err
		}
	}
	if opt.IgnoreFunctions {
		sd.Functions, dd.Functions = nil, nil
	}
	tol := opt.TTLTolerance
	if tol == 0 {
		tol = 2 * time.Second
	}
	return sd.Diff(dd, tol), sd, dd, nil
}

// AssertSameData fails the test unless the source (src addrs) and the target hold
// the same data: every key, type, value, TTL (within 2 s) and function library.
// It prints the first 20 differences and the key counts of both sides.
func AssertSameData(t testing.TB, src, dst []string, srcCluster, dstCluster bool) {
	t.Helper()
	AssertSameDataOpts(t, src, dst, CompareOptions{SrcCluster: srcCluster, DstCluster: dstCluster})
}

// AssertSameDataOpts is AssertSameData with db mapping, tolerance and waiting.
func AssertSameDataOpts(t testing.TB, src, dst []string, opt CompareOptions) {
	t.Helper()
	deadline := time.Now().Add(opt.Wait)
	for {
		diffs, sd, dd, err := Compare(context.Background(), src, dst, opt)
		if err == nil && len(diffs) == 0 {
			return
		}
		if time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("redistest: compare %v → %v: %v", src, dst, err)
		}
		shown := diffs
		if len(shown) > 20 {
			shown = shown[:20]
		}
		waited := ""
		if opt.Wait > 0 {
			waited = fmt.Sprintf(" (after waiting %v)", opt.Wait)
		}
		t.Fatalf("redistest: target %v differs from source %v%s: %d differences; first %d:\n  %s\nsource: %d keys: %s\ntarget: %d keys: %s",
			dst, src, waited, len(diffs), len(shown), strings.Join(shown, "\n  "),
			sd.Total(), sd.CountsString(), dd.Total(), dd.CountsString())
	}
}
