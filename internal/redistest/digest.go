package redistest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// IgnorePrefix marks keys ferry owns on a target (fence markers, probes); digests skip them.
const IgnorePrefix = "__ferry:"

// DetailLimit is the number of elements up to which a KeyDigest keeps the full
// canonical value (Fields) for readable diffs; bigger keys keep only ValueHash.
const DetailLimit = 200_000

const (
	scanBatch = 256  // keys per pipelined batch
	pageSize  = 1000 // elements per HSCAN/SSCAN/ZSCAN/LRANGE/XRANGE/XPENDING page
	workers   = 4    // batches in flight per node and db
)

// Field is one element of a key's canonical value. Per type:
//
//	string  one Field{"", value}
//	list    Field{index, element} in order ("0", "1", ...)
//	set     Field{member, ""} sorted by member
//	zset    Field{member, score} sorted by member; score formatted exactly ("inf", "-inf", shortest round-trip)
//	hash    Field{field, value} sorted by field
//	stream  Field{"entry <id>", `"f1" "v1" ...`} in id order, then "length", "last-id",
//	        then per group (sorted): `group "g"` = "last-delivered-id <id>",
//	        `group "g" consumer "c"` = "pending <n>" (sorted), `group "g" pel <id>` = `owner "c"` (id order).
//	        Delivery counts and idle/seen times are not part of it.
type Field struct{ Name, Value string }

// KeyDigest is the canonical description of one key.
type KeyDigest struct {
	DB        int
	Key       string
	Type      string        // string, list, set, zset, hash, stream (or a module type: value is its DUMP payload)
	Len       int64         // elements (string: bytes; stream: entries)
	ExpireAt  int64         // absolute expiry, unix ms; 0 = no TTL
	TTL       time.Duration // remaining TTL when read; 0 = no TTL
	Fields    []Field       // canonical value; nil when the key has more than DetailLimit elements
	ValueHash [32]byte      // sha256 of type + Fields
}

// Digest describes every key of a deployment (all dbs of a standalone server, db 0 of
// every master of a cluster), except keys starting with IgnorePrefix.
type Digest struct {
	Keys map[string]KeyDigest // by "db/key", e.g. "0/user:1"
	// Sum is a sha256 over db, key, type, value and TTL presence (not the TTL values)
	// of every key, in (db, key) order. Functions are not part of it.
	Sum       string
	Functions map[string]string      // FUNCTION LIST WITHCODE: library name → code
	Counts    map[int]map[string]int // db → type → number of keys
	TakenAt   time.Time              // when the reading started
}

func digestKey(db int, key string) string { return strconv.Itoa(db) + "/" + key }

// TakeDigest reads every key of a standalone server (addrs: one or more servers,
// merged; all dbs) or of a cluster (cluster: addrs seed the topology; every master,
// db 0). Big collections are read page by page.
func TakeDigest(ctx context.Context, addrs []string, cluster bool) (*Digest, error) {
	if len(addrs) == 0 {
		return nil, errors.New("digest: no address")
	}
	nodes := addrs
	if cluster {
		var err error
		if nodes, err = clusterMasters(ctx, addrs); err != nil {
			return nil, fmt.Errorf("digest: %w", err)
		}
	}
	d := &Digest{Keys: map[string]KeyDigest{}, Functions: map[string]string{}, TakenAt: time.Now()}
	var mu sync.Mutex
	funcs := map[string][]string{} // lib → code per node
	var errs []error
	var wg sync.WaitGroup
	for _, addr := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys, fl, err := digestNode(ctx, addr, cluster, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("digest %s: %w", addr, err))
				return
			}
			for _, k := range keys {
				id := digestKey(k.DB, k.Key)
				if _, dup := d.Keys[id]; dup {
					errs = append(errs, fmt.Errorf("digest: key db%d %q found on more than one node", k.DB, k.Key))
					continue
				}
				d.Keys[id] = k
			}
			for lib, code := range fl {
				funcs[lib] = append(funcs[lib], code)
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for lib, codes := range funcs {
		code := codes[0]
		for _, c := range codes[1:] {
			if c != code {
				code = "<differs between nodes>"
			}
		}
		if len(codes) != len(nodes) {
			code = fmt.Sprintf("<on %d of %d nodes> %s", len(codes), len(nodes), code)
		}
		d.Functions[lib] = code
	}
	d.finish()
	return d, nil
}

// finish computes Sum and Counts from Keys.
func (d *Digest) finish() {
	ids := make([]KeyDigest, 0, len(d.Keys))
	d.Counts = map[int]map[string]int{}
	for _, k := range d.Keys {
		ids = append(ids, k)
		if d.Counts[k.DB] == nil {
			d.Counts[k.DB] = map[string]int{}
		}
		d.Counts[k.DB][k.Type]++
	}
	sort.Slice(ids, func(i, j int) bool {
		if ids[i].DB != ids[j].DB {
			return ids[i].DB < ids[j].DB
		}
		return ids[i].Key < ids[j].Key
	})
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	for _, k := range ids {
		ttl := "-"
		if k.ExpireAt != 0 {
			ttl = "ttl"
		}
		for _, s := range []string{strconv.Itoa(k.DB), k.Key, k.Type, ttl} {
			writeLP(h, buf[:], s)
		}
		h.Write(k.ValueHash[:])
	}
	d.Sum = hex.EncodeToString(h.Sum(nil))
}

func writeLP(h hash.Hash, buf []byte, s string) {
	n := binary.PutUvarint(buf, uint64(len(s)))
	h.Write(buf[:n])
	h.Write([]byte(s))
}

// Total returns the number of keys.
func (d *Digest) Total() int { return len(d.Keys) }

// MapDBs returns a copy whose keys of source db s are moved to db m[s]; keys of dbs
// not in m are dropped (map a db to itself to keep it). Two keys landing on the same
// db/key is an error.
func (d *Digest) MapDBs(m map[int]int) (*Digest, error) {
	out := &Digest{Keys: make(map[string]KeyDigest, len(d.Keys)), Functions: d.Functions, TakenAt: d.TakenAt}
	for _, k := range d.Keys {
		to, ok := m[k.DB]
		if !ok {
			continue
		}
		from := k.DB
		k.DB = to
		id := digestKey(to, k.Key)
		if prev, dup := out.Keys[id]; dup {
			return nil, fmt.Errorf("db map: key %q of db%d and of another db (now db%d) both map to db%d", k.Key, from, prev.DB, to)
		}
		out.Keys[id] = k
	}
	out.finish()
	return out, nil
}

// CountsString renders Counts as "db0: hash=3 string=10; db1: ...".
func (d *Digest) CountsString() string {
	dbs := make([]int, 0, len(d.Counts))
	for db := range d.Counts {
		dbs = append(dbs, db)
	}
	sort.Ints(dbs)
	var parts []string
	for _, db := range dbs {
		types := make([]string, 0, len(d.Counts[db]))
		for t := range d.Counts[db] {
			types = append(types, t)
		}
		sort.Strings(types)
		var b strings.Builder
		fmt.Fprintf(&b, "db%d:", db)
		for _, t := range types {
			fmt.Fprintf(&b, " %s=%d", t, d.Counts[db][t])
		}
		parts = append(parts, b.String())
	}
	if len(parts) == 0 {
		return "(empty)"
	}
	return strings.Join(parts, "; ")
}

func clusterMasters(ctx context.Context, seeds []string) ([]string, error) {
	var lastErr error
	for _, seed := range seeds {
		cl := redis.NewClient(newClientOptions(seed))
		//lint:ignore SA1019 CLUSTER SLOTS is the fallback for servers older than 7.0
		slots, err := cl.ClusterSlots(ctx).Result()
		cl.Close()
		if err != nil {
			lastErr = err
			continue
		}
		covered := 0
		seen := map[string]bool{}
		var out []string
		for _, s := range slots {
			if len(s.Nodes) == 0 {
				continue
			}
			covered += int(s.End-s.Start) + 1
			a := s.Nodes[0].Addr
			if strings.HasPrefix(a, ":") { // node without a known host: same host as the seed
				host, _, _ := strings.Cut(seed, ":")
				a = host + a
			}
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
		if covered != 16384 {
			return nil, fmt.Errorf("cluster via %s covers %d of 16384 slots", seed, covered)
		}
		sort.Strings(out)
		return out, nil
	}
	return nil, fmt.Errorf("no seed answered CLUSTER SLOTS: %w", lastErr)
}

func dbsWithKeys(ctx context.Context, cl *redis.Client) ([]int, error) {
	txt, err := cl.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, err
	}
	var dbs []int
	for k := range parseInfo(txt) {
		if n, err := strconv.Atoi(strings.TrimPrefix(k, "db")); err == nil && strings.HasPrefix(k, "db") {
			dbs = append(dbs, n)
		}
	}
	sort.Ints(dbs)
	return dbs, nil
}

// digestNode reads one node: all dbs with keys (cluster: db 0) and the functions.
func digestNode(ctx context.Context, addr string, cluster bool, tlsCfg *tls.Config) ([]KeyDigest, map[string]string, error) {
	ctl := redis.NewClient(tlsClientOptions(addr, tlsCfg))
	defer ctl.Close()
	dbs := []int{0}
	if !cluster {
		var err error
		if dbs, err = dbsWithKeys(ctx, ctl); err != nil {
			return nil, nil, err
		}
	}
	funcs, err := functionList(ctx, ctl)
	if err != nil {
		return nil, nil, err
	}
	// PEXPIRETIME (7.0+) gives the exact absolute expiry; older servers: now+PTTL.
	absTTL := ctl.Do(ctx, "PEXPIRETIME", "__ferry:probe").Err() == nil
	var out []KeyDigest
	for _, db := range dbs {
		opt := tlsClientOptions(addr, tlsCfg)
		opt.DB = db
		opt.PoolSize = workers + 1
		cl := redis.NewClient(opt)
		keys, err := digestDB(ctx, cl, db, absTTL)
		cl.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("db%d: %w", db, err)
		}
		out = append(out, keys...)
	}
	return out, funcs, nil
}

func functionList(ctx context.Context, cl *redis.Client) (map[string]string, error) {
	v, err := cl.Do(ctx, "FUNCTION", "LIST", "WITHCODE").Result()
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "unknown") {
			return nil, nil // before Redis 7.0
		}
		return nil, fmt.Errorf("FUNCTION LIST: %w", err)
	}
	out := map[string]string{}
	for _, lib := range toSlice(v) {
		m := kv(lib)
		out[toStr(m["library_name"])] = toStr(m["engine"]) + "\n" + toStr(m["library_code"])
	}
	return out, nil
}

func digestDB(ctx context.Context, cl *redis.Client, db int, absTTL bool) ([]KeyDigest, error) {
	var keys []string
	seen := map[string]bool{}
	var cursor uint64
	for {
		ks, next, err := cl.Scan(ctx, cursor, "", pageSize).Result()
		if err != nil {
			return nil, fmt.Errorf("SCAN: %w", err)
		}
		for _, k := range ks {
			if !seen[k] && !strings.HasPrefix(k, IgnorePrefix) {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	batches := make(chan []string)
	var mu sync.Mutex
	var out []KeyDigest
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				kds, err := digestBatch(ctx, cl, db, b, absTTL)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				out = append(out, kds...)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < len(keys); i += scanBatch {
		batches <- keys[i:min(len(keys), i+scanBatch)]
	}
	close(batches)
	wg.Wait()
	return out, firstErr
}

// keyRead is the state of one key while its batch is read.
type keyRead struct {
	kd     KeyDigest
	first  *redis.Cmd // first page of the value (or the whole string)
	xinfo  *redis.Cmd // XINFO STREAM
	xgrps  *redis.Cmd // XINFO GROUPS
	groups []*groupRead
}

type groupRead struct {
	name, lastID string
	pending      int64
	consumers    *redis.Cmd
	pel          *redis.Cmd
}

func digestBatch(ctx context.Context, cl *redis.Client, db int, keys []string, absTTL bool) ([]KeyDigest, error) {
	// 1: type and expiry
	p := cl.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	exps := make([]*redis.Cmd, len(keys))
	for i, k := range keys {
		types[i] = p.Type(ctx, k)
		if absTTL {
			exps[i] = p.Do(ctx, "PEXPIRETIME", k)
		} else {
			exps[i] = p.Do(ctx, "PTTL", k)
		}
	}
	now := time.Now()
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("TYPE/PEXPIRETIME: %w", err)
	}
	reads := make([]*keyRead, 0, len(keys))
	for i, k := range keys {
		typ := types[i].Val()
		if typ == "none" {
			continue // expired or deleted since SCAN
		}
		r := &keyRead{kd: KeyDigest{DB: db, Key: k, Type: typ}}
		e, _ := exps[i].Int64()
		switch {
		case e == -2:
			continue
		case e >= 0 && absTTL:
			r.kd.ExpireAt = max(e, 1)
			r.kd.TTL = time.UnixMilli(e).Sub(now)
		case e >= 0:
			r.kd.ExpireAt = now.Add(time.Duration(e) * time.Millisecond).UnixMilli()
			r.kd.TTL = time.Duration(e) * time.Millisecond
		}
		reads = append(reads, r)
	}
	// 2: value (or its first page), stream metadata
	p = cl.Pipeline()
	for _, r := range reads {
		k := r.kd.Key
		switch r.kd.Type {
		case "string":
			r.first = p.Do(ctx, "GET", k)
		case "list":
			r.first = p.Do(ctx, "LRANGE", k, 0, pageSize-1)
		case "set":
			r.first = p.Do(ctx, "SSCAN", k, 0, "COUNT", pageSize)
		case "zset":
			r.first = p.Do(ctx, "ZSCAN", k, 0, "COUNT", pageSize)
		case "hash":
			r.first = p.Do(ctx, "HSCAN", k, 0, "COUNT", pageSize)
		case "stream":
			r.first = p.Do(ctx, "XRANGE", k, "-", "+", "COUNT", pageSize)
			r.xinfo = p.Do(ctx, "XINFO", "STREAM", k)
			r.xgrps = p.Do(ctx, "XINFO", "GROUPS", k)
		default:
			r.first = p.Do(ctx, "DUMP", k)
		}
	}
	if _, err := p.Exec(ctx); err != nil && err != redis.Nil {
		if !isKeyGoneErr(err) {
			return nil, fmt.Errorf("read values: %w", err)
		}
	}
	// 3: stream groups: consumers and first PEL page
	p = cl.Pipeline()
	queued := 0
	for _, r := range reads {
		if r.kd.Type != "stream" || r.xgrps.Err() != nil {
			continue
		}
		for _, g := range toSlice(r.xgrps.Val()) {
			m := kv(g)
			gr := &groupRead{name: toStr(m["name"]), lastID: toStr(m["last-delivered-id"]), pending: toInt(m["pending"])}
			gr.consumers = p.Do(ctx, "XINFO", "CONSUMERS", r.kd.Key, gr.name)
			if gr.pending > 0 {
				gr.pel = p.Do(ctx, "XPENDING", r.kd.Key, gr.name, "-", "+", pageSize)
			}
			queued++
			r.groups = append(r.groups, gr)
		}
	}
	if queued > 0 {
		if _, err := p.Exec(ctx); err != nil && !isKeyGoneErr(err) {
			return nil, fmt.Errorf("stream groups: %w", err)
		}
	}
	out := make([]KeyDigest, 0, len(reads))
	for _, r := range reads {
		ok, err := r.finish(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("key %q (%s): %w", r.kd.Key, r.kd.Type, err)
		}
		if ok {
			out = append(out, r.kd)
		}
	}
	return out, nil
}

func isKeyGoneErr(err error) bool {
	return err == redis.Nil || (err != nil && strings.Contains(err.Error(), "no such key"))
}

// finish reads the remaining pages and builds Fields and ValueHash; false when the
// key disappeared while being read.
func (r *keyRead) finish(ctx context.Context, cl *redis.Client) (bool, error) {
	k := r.kd.Key
	if err := r.first.Err(); err != nil {
		if isKeyGoneErr(err) {
			return false, nil
		}
		return false, err
	}
	var fields []Field
	switch r.kd.Type {
	case "string":
		v := toStr(r.first.Val())
		fields = []Field{{"", v}}
		r.kd.Len = int64(len(v))
	case "list":
		page := toSlice(r.first.Val())
		for start := int64(0); ; {
			for _, e := range page {
				fields = append(fields, Field{strconv.Itoa(len(fields)), toStr(e)})
			}
			if len(page) < pageSize {
				break
			}
			start += pageSize
			v, err := cl.Do(ctx, "LRANGE", k, start, start+pageSize-1).Result()
			if err != nil {
				return false, err
			}
			page = toSlice(v)
		}
		if len(fields) == 0 {
			return false, nil
		}
	case "set", "zset", "hash":
		cmd := map[string]string{"set": "SSCAN", "zset": "ZSCAN", "hash": "HSCAN"}[r.kd.Type]
		m := map[string]string{}
		reply := r.first.Val()
		for {
			arr := toSlice(reply)
			if len(arr) != 2 {
				return false, fmt.Errorf("%s: unexpected reply %v", cmd, reply)
			}
			items := toSlice(arr[1])
			if r.kd.Type == "set" {
				for _, it := range items {
					m[toStr(it)] = ""
				}
			} else {
				for i := 0; i+1 < len(items); i += 2 {
					m[toStr(items[i])] = toStr(items[i+1])
				}
			}
			cur := toStr(arr[0])
			if cur == "0" {
				break
			}
			v, err := cl.Do(ctx, cmd, k, cur, "COUNT", pageSize).Result()
			if err != nil {
				return false, err
			}
			reply = v
		}
		if len(m) == 0 {
			return false, nil
		}
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		fields = make([]Field, len(names))
		for i, n := range names {
			v := m[n]
			if r.kd.Type == "zset" {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return false, fmt.Errorf("zset score %q: %w", v, err)
				}
				v = FormatScore(f)
			}
			fields[i] = Field{n, v}
		}
	case "stream":
		var err error
		if fields, err = r.streamFields(ctx, cl); err != nil {
			return false, err
		}
	default:
		fields = []Field{{"dump", toStr(r.first.Val())}}
	}
	if r.kd.Type != "string" && r.kd.Type != "stream" {
		r.kd.Len = int64(len(fields))
	}
	r.kd.ValueHash = valueHash(r.kd.Type, fields)
	if len(fields) <= DetailLimit {
		r.kd.Fields = fields
	}
	return true, nil
}

func (r *keyRead) streamFields(ctx context.Context, cl *redis.Client) ([]Field, error) {
	k := r.kd.Key
	var fields []Field
	page := toSlice(r.first.Val())
	for {
		last := ""
		for _, e := range page {
			ent := toSlice(e)
			if len(ent) < 2 {
				return nil, fmt.Errorf("XRANGE: unexpected entry %v", e)
			}
			id := toStr(ent[0])
			var parts []string
			for _, x := range toSlice(ent[1]) {
				parts = append(parts, strconv.Quote(toStr(x)))
			}
			fields = append(fields, Field{"entry " + id, strings.Join(parts, " ")})
			last = id
		}
		if len(page) < pageSize {
			break
		}
		v, err := cl.Do(ctx, "XRANGE", k, "("+last, "+", "COUNT", pageSize).Result()
		if err != nil {
			return nil, err
		}
		page = toSlice(v)
	}
	r.kd.Len = int64(len(fields))
	if err := r.xinfo.Err(); err != nil {
		if isKeyGoneErr(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("XINFO STREAM: %w", err)
	}
	si := kv(r.xinfo.Val())
	fields = append(fields, Field{"length", toStr(si["length"])}, Field{"last-id", toStr(si["last-generated-id"])})
	if err := r.xgrps.Err(); err != nil {
		return nil, fmt.Errorf("XINFO GROUPS: %w", err)
	}
	sort.Slice(r.groups, func(i, j int) bool { return r.groups[i].name < r.groups[j].name })
	for _, g := range r.groups {
		gn := "group " + strconv.Quote(g.name)
		fields = append(fields, Field{gn, "last-delivered-id " + g.lastID})
		if err := g.consumers.Err(); err != nil {
			return nil, fmt.Errorf("XINFO CONSUMERS %s: %w", g.name, err)
		}
		var cons []Field
		for _, c := range toSlice(g.consumers.Val()) {
			m := kv(c)
			cons = append(cons, Field{gn + " consumer " + strconv.Quote(toStr(m["name"])), "pending " + toStr(m["pending"])})
		}
		sort.Slice(cons, func(i, j int) bool { return cons[i].Name < cons[j].Name })
		fields = append(fields, cons...)
		if g.pel == nil {
			continue
		}
		if err := g.pel.Err(); err != nil {
			return nil, fmt.Errorf("XPENDING %s: %w", g.name, err)
		}
		page := toSlice(g.pel.Val())
		for {
			last := ""
			for _, e := range page {
				ent := toSlice(e)
				if len(ent) < 2 {
					return nil, fmt.Errorf("XPENDING: unexpected entry %v", e)
				}
				last = toStr(ent[0])
				fields = append(fields, Field{gn + " pel " + last, "owner " + strconv.Quote(toStr(ent[1]))})
			}
			if len(page) < pageSize {
				break
			}
			v, err := cl.Do(ctx, "XPENDING", k, g.name, "("+last, "+", pageSize).Result()
			if err != nil {
				return nil, err
			}
			page = toSlice(v)
		}
	}
	return fields, nil
}

func valueHash(typ string, fields []Field) (out [32]byte) {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	writeLP(h, buf[:], typ)
	for _, f := range fields {
		writeLP(h, buf[:], f.Name)
		writeLP(h, buf[:], f.Value)
	}
	copy(out[:], h.Sum(nil))
	return out
}

// FormatScore formats a zset score exactly: "inf", "-inf", or the shortest
// decimal that round-trips to the same float64.
func FormatScore(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// kv turns a RESP2 flat [k1 v1 k2 v2 ...] array (or a RESP3 map) into a map.
func kv(x any) map[string]any {
	m := map[string]any{}
	switch a := x.(type) {
	case []any:
		for i := 0; i+1 < len(a); i += 2 {
			m[toStr(a[i])] = a[i+1]
		}
	case map[any]any:
		for k, v := range a {
			m[toStr(k)] = v
		}
	}
	return m
}

func toSlice(x any) []any {
	a, _ := x.([]any)
	return a
}

func toStr(x any) string {
	switch v := x.(type) {
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

func toInt(x any) int64 {
	switch v := x.(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}
