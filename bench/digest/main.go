// Command digest prints an encoding-independent digest of all the data of a
// Redis server or cluster: per-db counts by type and one hash over every key,
// its type, its value and whether it has a TTL. Two deployments holding the
// same logical data print the same lines, whatever their encodings, node
// count or key order.
//
//	digest -addr 127.0.0.1:6379 [-ignore __ferry:] [-dump keys.txt]
//
// Sets and hashes are hashed in sorted order, lists, sorted sets and streams
// in their own order. A stream counts with its entries, its last id and, per
// consumer group, name, consumers, pending count and last delivered id.
// Keys starting with an -ignore prefix (ferry's own markers) are skipped.
// Written for static data: run it when no writes are going on.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/bench/internal/rk"
)

var (
	ignore  []string
	workers int
)

type dbSum struct {
	keys, ttl int64
	byType    map[string]int64
	xor       [32]byte
}

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "server or any cluster node")
	ign := flag.String("ignore", "__ferry:", "comma-separated key prefixes to skip")
	dump := flag.String("dump", "", "write one line per key (db, key, type, ttl, hash) to this file, sorted")
	flag.IntVar(&workers, "workers", 3, "concurrent connections per master")
	flag.Parse()
	for _, p := range strings.Split(*ign, ",") {
		if p != "" {
			ignore = append(ignore, p)
		}
	}
	ctx := context.Background()
	t0 := time.Now()
	topo, err := rk.Discover(ctx, *addr)
	if err != nil {
		fatal(err)
	}
	var mu sync.Mutex
	sums := map[int]*dbSum{}
	var lines []string
	var wg sync.WaitGroup
	errs := make(chan error, len(topo.Masters))
	for _, m := range topo.Masters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- digestMaster(ctx, m.Addr, func(db int, key, typ string, ttl bool, h [32]byte) {
				mu.Lock()
				defer mu.Unlock()
				s := sums[db]
				if s == nil {
					s = &dbSum{byType: map[string]int64{}}
					sums[db] = s
				}
				s.keys++
				s.byType[typ]++
				if ttl {
					s.ttl++
				}
				for i := range h {
					s.xor[i] ^= h[i]
				}
				if *dump != "" {
					lines = append(lines, fmt.Sprintf("%d %q %s ttl=%v %x", db, key, typ, ttl, h[:8]))
				}
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			fatal(err)
		}
	}
	dbs := make([]int, 0, len(sums))
	for db := range sums {
		dbs = append(dbs, db)
	}
	sort.Ints(dbs)
	all := sha256.New()
	var total int64
	for _, db := range dbs {
		s := sums[db]
		total += s.keys
		var parts []string
		for _, t := range []string{"string", "hash", "list", "set", "zset", "stream"} {
			if s.byType[t] > 0 {
				parts = append(parts, fmt.Sprintf("%s=%d", t, s.byType[t]))
			}
		}
		fmt.Printf("db%d keys=%d %s ttl=%d\n", db, s.keys, strings.Join(parts, " "), s.ttl)
		fmt.Fprintf(all, "%d:%x\n", db, s.xor)
	}
	fmt.Printf("total keys=%d\ndigest %s\n", total, hex.EncodeToString(all.Sum(nil))[:32])
	fmt.Fprintf(os.Stderr, "digest: %d keys on %d master(s) in %.1f s\n", total, len(topo.Masters), time.Since(t0).Seconds())
	if *dump != "" {
		sort.Strings(lines)
		if err := os.WriteFile(*dump, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "digest:", err)
	os.Exit(1)
}

func ignored(key string) bool {
	for _, p := range ignore {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

type emit func(db int, key, typ string, ttl bool, h [32]byte)

func digestMaster(ctx context.Context, addr string, out emit) error {
	c := rk.Client(addr, 0, 1)
	info, err := c.Info(ctx, "keyspace").Result()
	c.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	for db := range rk.Keyspace(info) {
		if err := digestDB(ctx, addr, db, out); err != nil {
			return fmt.Errorf("%s db %d: %w", addr, db, err)
		}
	}
	return nil
}

func digestDB(ctx context.Context, addr string, db int, out emit) error {
	c := rk.Client(addr, db, workers+1)
	defer c.Close()
	batches := make(chan []string, workers)
	errs := make(chan error, workers+1)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for keys := range batches {
				if err := digestKeys(ctx, c, db, keys, out); err != nil {
					errs <- err
					for range batches {
					}
					return
				}
			}
		}()
	}
	var cursor uint64
	var scanErr error
	for {
		keys, next, err := c.Scan(ctx, cursor, "", 1000).Result()
		if err != nil {
			scanErr = err
			break
		}
		keys = slices.DeleteFunc(keys, ignored)
		if len(keys) > 0 {
			batches <- keys
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	close(batches)
	wg.Wait()
	close(errs)
	if scanErr != nil {
		return scanErr
	}
	for err := range errs {
		return err
	}
	return nil
}

// smallMax: collections up to this size are read in one command.
const smallMax = 5000

func digestKeys(ctx context.Context, c *redis.Client, db int, keys []string, out emit) error {
	// Round 1: type and TTL. SCAN may return a key twice; keep the first.
	keys = dedupe(keys)
	p := c.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		types[i] = p.Type(ctx, k)
		ttls[i] = p.PTTL(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
		return err
	}
	// Round 2: sizes of the collections.
	sizes := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		switch types[i].Val() {
		case "hash":
			sizes[i] = p.HLen(ctx, k)
		case "list":
			sizes[i] = p.LLen(ctx, k)
		case "set":
			sizes[i] = p.SCard(ctx, k)
		case "zset":
			sizes[i] = p.ZCard(ctx, k)
		case "stream":
			sizes[i] = p.XLen(ctx, k)
		}
	}
	if p.Len() > 0 {
		if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
	}
	// Round 3: values of everything small; big collections one by one.
	vals := make([][]*redis.Cmd, len(keys))
	for i, k := range keys {
		n := int64(0)
		if sizes[i] != nil {
			n = sizes[i].Val()
		}
		if n > smallMax {
			continue
		}
		switch types[i].Val() {
		case "string":
			vals[i] = []*redis.Cmd{p.Do(ctx, "get", k)}
		case "hash":
			vals[i] = []*redis.Cmd{p.Do(ctx, "hgetall", k)}
		case "list":
			vals[i] = []*redis.Cmd{p.Do(ctx, "lrange", k, 0, -1)}
		case "set":
			vals[i] = []*redis.Cmd{p.Do(ctx, "smembers", k)}
		case "zset":
			vals[i] = []*redis.Cmd{p.Do(ctx, "zrange", k, 0, -1, "withscores")}
		case "stream":
			vals[i] = []*redis.Cmd{p.Do(ctx, "xrange", k, "-", "+"), p.Do(ctx, "xinfo", "stream", k), p.Do(ctx, "xinfo", "groups", k)}
		}
	}
	if p.Len() > 0 {
		if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
	}
	for i, k := range keys {
		typ := types[i].Val()
		if typ == "none" { // expired or deleted meanwhile
			continue
		}
		ttl := ttls[i].Val() > 0
		h := sha256.New()
		var lb [binary.MaxVarintLen64]byte
		put := func(s string) {
			h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(s)))])
			h.Write([]byte(s))
		}
		put(fmt.Sprint(db))
		put(k)
		put(typ)
		put(fmt.Sprint(ttl))
		var err error
		if vals[i] != nil {
			err = hashSmall(typ, vals[i], put)
		} else {
			err = hashBig(ctx, c, typ, k, sizes[i].Val(), put)
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", typ, k, err)
		}
		var sum [32]byte
		h.Sum(sum[:0])
		out(db, k, typ, ttl, sum)
	}
	return nil
}

func dedupe(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	return slices.DeleteFunc(keys, func(k string) bool {
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

func strs(v any) ([]string, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", v)
	}
	out := make([]string, len(a))
	for i, e := range a {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected element %T", e)
		}
		out[i] = s
	}
	return out, nil
}

// pairs sorts a flat field/value list by field.
func sortPairs(a []string) []string {
	type kv struct{ k, v string }
	ps := make([]kv, len(a)/2)
	for i := range ps {
		ps[i] = kv{a[2*i], a[2*i+1]}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].k < ps[j].k })
	ps = slices.CompactFunc(ps, func(x, y kv) bool { return x.k == y.k })
	out := make([]string, 0, 2*len(ps))
	for _, p := range ps {
		out = append(out, p.k, p.v)
	}
	return out
}

func hashSmall(typ string, cmds []*redis.Cmd, put func(string)) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && err != redis.Nil {
			return err
		}
	}
	if typ == "string" {
		s, _ := cmds[0].Val().(string)
		put(s)
		return nil
	}
	if typ == "stream" {
		return hashStream(cmds[0].Val(), cmds[1].Val(), cmds[2].Val(), put)
	}
	a, err := strs(cmds[0].Val())
	if err != nil {
		return err
	}
	switch typ {
	case "hash":
		a = sortPairs(a)
	case "set":
		sort.Strings(a)
		a = slices.Compact(a)
	}
	for _, s := range a {
		put(s)
	}
	return nil
}

// hashStream: entries (id, fields), then the stream's last id, then each
// group's name, consumers, pending and last delivered id (by name).
func hashStream(entries, info, groups any, put func(string)) error {
	es, ok := entries.([]any)
	if !ok {
		return fmt.Errorf("xrange: unexpected reply %T", entries)
	}
	for _, e := range es {
		if err := putEntry(e, put); err != nil {
			return err
		}
	}
	return hashStreamMeta(info, groups, put)
}

func putEntry(e any, put func(string)) error {
	pair, ok := e.([]any)
	if !ok || len(pair) != 2 {
		return fmt.Errorf("xrange: unexpected entry %v", e)
	}
	id, _ := pair[0].(string)
	put(id)
	fs, err := strs(pair[1])
	if err != nil {
		return err
	}
	for _, f := range fs {
		put(f)
	}
	return nil
}

func flatMap(v any) map[string]any {
	a, _ := v.([]any)
	m := map[string]any{}
	for i := 0; i+1 < len(a); i += 2 {
		if k, ok := a[i].(string); ok {
			m[k] = a[i+1]
		}
	}
	return m
}

func hashStreamMeta(info, groups any, put func(string)) error {
	m := flatMap(info)
	put(fmt.Sprint(m["length"]))
	put(fmt.Sprint(m["last-generated-id"]))
	gs, _ := groups.([]any)
	var lines []string
	for _, g := range gs {
		gm := flatMap(g)
		lines = append(lines, fmt.Sprintf("%v %v %v %v", gm["name"], gm["consumers"], gm["pending"], gm["last-delivered-id"]))
	}
	sort.Strings(lines)
	for _, l := range lines {
		put(l)
	}
	return nil
}

// hashBig reads a big collection in chunks.
func hashBig(ctx context.Context, c *redis.Client, typ, key string, n int64, put func(string)) error {
	const chunk = 10000
	switch typ {
	case "list", "zset":
		cmd := "lrange"
		if typ == "zset" {
			cmd = "zrange"
		}
		for i := int64(0); i < n; i += chunk {
			args := []any{cmd, key, i, i + chunk - 1}
			if typ == "zset" {
				args = append(args, "withscores")
			}
			v, err := c.Do(ctx, args...).Result()
			if err != nil {
				return err
			}
			a, err := strs(v)
			if err != nil {
				return err
			}
			for _, s := range a {
				put(s)
			}
		}
	case "hash", "set":
		cmd := "hscan"
		if typ == "set" {
			cmd = "sscan"
		}
		var all []string
		var cursor any = "0"
		for {
			v, err := c.Do(ctx, cmd, key, cursor, "count", chunk).Result()
			if err != nil {
				return err
			}
			r, _ := v.([]any)
			if len(r) != 2 {
				return fmt.Errorf("%s: unexpected reply", cmd)
			}
			a, err := strs(r[1])
			if err != nil {
				return err
			}
			all = append(all, a...)
			if cursor = r[0]; cursor == "0" {
				break
			}
		}
		if typ == "hash" {
			all = sortPairs(all)
		} else {
			sort.Strings(all)
			all = slices.Compact(all)
		}
		for _, s := range all {
			put(s)
		}
	case "stream":
		start := "-"
		for {
			v, err := c.Do(ctx, "xrange", key, start, "+", "count", chunk).Result()
			if err != nil {
				return err
			}
			es, _ := v.([]any)
			for _, e := range es {
				if err := putEntry(e, put); err != nil {
					return err
				}
			}
			if len(es) < chunk {
				break
			}
			last, _ := es[len(es)-1].([]any)[0].(string)
			start = "(" + last
		}
		info, err := c.Do(ctx, "xinfo", "stream", key).Result()
		if err != nil {
			return err
		}
		groups, err := c.Do(ctx, "xinfo", "groups", key).Result()
		if err != nil {
			return err
		}
		return hashStreamMeta(info, groups, put)
	default:
		return fmt.Errorf("unknown type")
	}
	return nil
}
