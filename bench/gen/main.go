// Command gen fills a Redis server or cluster with a deterministic mixed data
// set for the benchmarks: strings (10 B–10 KB, log-uniform), integers, hashes,
// lists, sets (some intsets), sorted sets (ties, ±inf), streams (consumer
// groups, pending entries, deleted entries), TTLs on about 10% of the keys,
// four dbs on a standalone server (70% in db0), and a few big keys.
//
//	gen -addr 127.0.0.1:6379 -n 1000000 [-big=false] [-seed 1] [-dbs 4]
//
// A cluster is detected and gets db 0 only, each command sent to the master
// of its slot. Key i is built from its own random stream (seed, i), so the
// data does not depend on batching or concurrency: the same -n and -seed give
// the same logical data on a server and on a cluster (with -dbs 1).
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/bench/internal/rk"
)

type options struct {
	n        int
	seed     uint64
	dbs      int
	db0Pct   int
	ttlPct   int
	strMin   int
	strMax   int
	big      bool
	bigScale float64
	batch    int
	workers  int
}

func main() {
	var o options
	addr := flag.String("addr", "127.0.0.1:6379", "server or any cluster node")
	flag.IntVar(&o.n, "n", 100000, "regular keys (big keys come on top)")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed")
	flag.IntVar(&o.dbs, "dbs", 4, "dbs on a standalone server (a cluster has db 0 only)")
	flag.IntVar(&o.db0Pct, "db0-pct", 70, "percent of the keys in db 0 (the rest share dbs 1..dbs-1)")
	flag.IntVar(&o.ttlPct, "ttl-pct", 10, "percent of the keys with a TTL (1 h–24 h)")
	flag.IntVar(&o.strMin, "str-min", 10, "smallest string value, bytes")
	flag.IntVar(&o.strMax, "str-max", 10240, "largest string value, bytes")
	flag.BoolVar(&o.big, "big", true, "add big keys: 1M-field hash, 1M-element list, 200k set and zset, 100k-entry stream, 8 MB string")
	flag.Float64Var(&o.bigScale, "big-scale", 1, "scale the big keys' sizes by this factor")
	flag.IntVar(&o.batch, "batch", 1000, "commands per pipeline round trip")
	flag.IntVar(&o.workers, "workers", 2, "concurrent pipelines")
	flag.Parse()

	ctx := context.Background()
	topo, err := rk.Discover(ctx, *addr)
	if err != nil {
		fatal(err)
	}
	if topo.Cluster {
		o.dbs = 1
	}
	if o.dbs < 1 {
		o.dbs = 1
	}
	g := &gen{o: o}
	if topo.Cluster {
		g.cluster = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: []string{*addr}, Protocol: 2, DisableIdentity: true,
			ReadTimeout: 5 * time.Minute, WriteTimeout: 5 * time.Minute, MaxRedirects: 8,
		})
		defer g.cluster.Close()
	} else {
		for db := range o.dbs {
			g.dbClients = append(g.dbClients, rk.Client(*addr, db, o.workers+1))
		}
	}
	t0 := time.Now()
	if err := g.run(ctx); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "gen: %d keys", o.n)
	for t := range kinds {
		fmt.Fprintf(os.Stderr, " %s=%d", kinds[t], g.count[t].Load())
	}
	fmt.Fprintf(os.Stderr, " ttl=%d big=%v; %d commands in %.1f s\n", g.ttl.Load(), o.big, g.cmds.Load(), time.Since(t0).Seconds())
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}

var kinds = [...]string{"string", "int", "hash", "list", "set", "zset", "stream"}

// weights of the kinds above, out of 100
var weights = [...]int{50, 10, 12, 8, 8, 8, 4}

type gen struct {
	o         options
	dbClients []*redis.Client
	cluster   *redis.ClusterClient
	count     [len(kinds)]atomic.Int64
	ttl       atomic.Int64
	cmds      atomic.Int64
}

// cmd is one command for one db.
type cmd struct {
	db   int
	args []any
}

// pipe collects commands per db and sends them in round trips of o.batch.
type pipe struct {
	g     *gen
	pipes []redis.Pipeliner
	n     int
}

func (g *gen) newPipe() *pipe {
	p := &pipe{g: g}
	if g.cluster != nil {
		p.pipes = []redis.Pipeliner{g.cluster.Pipeline()}
	} else {
		for _, c := range g.dbClients {
			p.pipes = append(p.pipes, c.Pipeline())
		}
	}
	return p
}

func (p *pipe) add(ctx context.Context, c cmd) error {
	p.pipes[c.db].Do(ctx, c.args...)
	p.n++
	if p.n >= p.g.o.batch {
		return p.flush(ctx)
	}
	return nil
}

func (p *pipe) flush(ctx context.Context) error {
	if p.n == 0 {
		return nil
	}
	for _, pp := range p.pipes {
		if pp.Len() == 0 {
			continue
		}
		cmds, err := pp.Exec(ctx)
		if err != nil && err != redis.Nil {
			for _, c := range cmds {
				if e := c.Err(); e != nil && e != redis.Nil {
					return fmt.Errorf("%v: %w", clipArgs(c.Args()), e)
				}
			}
			return err
		}
	}
	p.g.cmds.Add(int64(p.n))
	p.n = 0
	return nil
}

func clipArgs(a []any) string {
	s := fmt.Sprint(a...)
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func (g *gen) run(ctx context.Context) error {
	var next atomic.Int64
	const chunk = 1000
	errs := make(chan error, g.o.workers+1)
	var wg sync.WaitGroup
	for range g.o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := g.newPipe()
			var buf []cmd
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= g.o.n {
					break
				}
				for i := lo; i < min(lo+chunk, g.o.n); i++ {
					buf = g.key(buf[:0], i)
					for _, c := range buf {
						if err := p.add(ctx, c); err != nil {
							errs <- err
							return
						}
					}
				}
			}
			errs <- p.flush(ctx)
		}()
	}
	if g.o.big {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- g.bigKeys(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// logUniform returns an integer in [lo, hi], log-uniformly distributed.
func logUniform(r *rand.Rand, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	v := math.Exp(math.Log(float64(lo)) + r.Float64()*(math.Log(float64(hi)+1)-math.Log(float64(lo))))
	return min(max(int(v), lo), hi)
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

// text returns n random characters of a 64-letter alphabet (LZF gains
// nothing on it, as on most real payloads that are not plain text).
func text(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := 0; i < n; {
		x := r.Uint64()
		for k := 0; k < 10 && i < n; k++ {
			b[i] = alnum[x&63]
			x >>= 6
			i++
		}
	}
	return string(b)
}

func binary(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := 0; i < n; {
		x := r.Uint64()
		for k := 0; k < 8 && i < n; k++ {
			b[i] = byte(x)
			x >>= 8
			i++
		}
	}
	return string(b)
}

// elem is a collection element: 30% integer-like, 5% binary, else text of
// 1–64 bytes.
func elem(r *rand.Rand) string {
	switch p := r.IntN(100); {
	case p < 30:
		if r.IntN(4) == 0 {
			return strconv.FormatInt(r.Int64(), 10)
		}
		return strconv.Itoa(r.IntN(100000))
	case p < 35:
		return binary(r, 1+r.IntN(64))
	default:
		return text(r, logUniform(r, 1, 64))
	}
}

// collSize: 1–100 log-uniform; 3% of the collections get 129–2000 elements,
// past the listpack and intset limits.
func collSize(r *rand.Rand) int {
	if r.IntN(100) < 3 {
		return logUniform(r, 129, 2000)
	}
	return logUniform(r, 1, 100)
}

func (g *gen) key(out []cmd, i int) []cmd {
	r := rand.New(rand.NewPCG(g.o.seed, uint64(i)))
	p, kind := r.IntN(100), 0
	for acc := 0; kind < len(weights); kind++ {
		acc += weights[kind]
		if p < acc {
			break
		}
	}
	db := 0
	if g.o.dbs > 1 && r.IntN(100) >= g.o.db0Pct {
		db = 1 + r.IntN(g.o.dbs-1)
	}
	g.count[kind].Add(1)
	key := fmt.Sprintf("%s:%08d", kinds[kind], i)
	add := func(args ...any) { out = append(out, cmd{db, args}) }
	switch kinds[kind] {
	case "string":
		n := logUniform(r, g.o.strMin, g.o.strMax)
		if r.IntN(100) < 5 {
			add("set", key, binary(r, n))
		} else {
			add("set", key, text(r, n))
		}
	case "int":
		switch r.IntN(3) {
		case 0:
			add("set", key, strconv.Itoa(r.IntN(10000))) // shared integers
		case 1:
			add("set", key, strconv.FormatInt(r.Int64N(1<<40)-1<<39, 10))
		default:
			add("set", key, strconv.FormatInt(int64(r.Uint64()), 10))
		}
	case "hash":
		n := collSize(r)
		args := []any{"hset", key}
		for j := range n {
			f := "f" + strconv.Itoa(j)
			if r.IntN(4) == 0 {
				f = elem(r)
			}
			args = append(args, f, elem(r))
			if len(args) >= 2002 {
				add(args...)
				args = []any{"hset", key}
			}
		}
		if len(args) > 2 {
			add(args...)
		}
	case "list":
		out = appendChunked(out, db, []any{"rpush", key}, collSize(r), func() []any { return []any{elem(r)} })
	case "set":
		n := collSize(r)
		if r.IntN(100) < 40 { // intset
			out = appendChunked(out, db, []any{"sadd", key}, n, func() []any { return []any{strconv.FormatInt(r.Int64N(1<<33)-1<<32, 10)} })
		} else {
			out = appendChunked(out, db, []any{"sadd", key}, n, func() []any { return []any{elem(r)} })
		}
	case "zset":
		out = appendChunked(out, db, []any{"zadd", key}, collSize(r), func() []any { return []any{score(r), elem(r)} })
	case "stream":
		out = g.stream(out, r, db, key, collSize(r))
	}
	if r.IntN(100) < g.o.ttlPct {
		g.ttl.Add(1)
		add("pexpire", key, strconv.Itoa((3600+r.IntN(86400-3600))*1000))
	}
	return out
}

func score(r *rand.Rand) string {
	switch p := r.IntN(100); {
	case p < 1:
		return "+inf"
	case p < 2:
		return "-inf"
	case p < 22:
		return strconv.Itoa(r.IntN(10)) // ties
	default:
		return strconv.FormatFloat((r.Float64()-0.3)*1e6, 'g', -1, 64)
	}
}

// appendChunked appends head + n elements (each from next), 1000 per command.
func appendChunked(out []cmd, db int, head []any, n int, next func() []any) []cmd {
	args := append([]any(nil), head...)
	for range n {
		args = append(args, next()...)
		if len(args)-len(head) >= 1000 {
			out = append(out, cmd{db, args})
			args = append([]any(nil), head...)
		}
	}
	if len(args) > len(head) {
		out = append(out, cmd{db, args})
	}
	return out
}

// stream: n entries with explicit ids; a third get consumer groups with
// pending entries, some an entry deleted in the middle.
func (g *gen) stream(out []cmd, r *rand.Rand, db int, key string, n int) []cmd {
	ms := int64(1_600_000_000_000) + r.Int64N(1e11)
	ids := make([]string, n)
	for j := range n {
		ms += 1 + r.Int64N(1000)
		ids[j] = fmt.Sprintf("%d-%d", ms, r.IntN(3))
		args := []any{"xadd", key, ids[j]}
		for range 1 + r.IntN(3) {
			args = append(args, text(r, logUniform(r, 1, 16)), elem(r))
		}
		out = append(out, cmd{db, args})
	}
	if r.IntN(100) < 34 {
		out = append(out, cmd{db, []any{"xgroup", "create", key, "g1", "0"}})
		read := 1 + r.IntN(n)
		out = append(out, cmd{db, []any{"xreadgroup", "group", "g1", "c" + strconv.Itoa(r.IntN(3)), "count", strconv.Itoa(read), "streams", key, ">"}})
		if ack := r.IntN(read + 1); ack > 0 {
			args := []any{"xack", key, "g1"}
			for _, id := range ids[:ack] {
				args = append(args, id)
			}
			out = append(out, cmd{db, args})
		}
		if r.IntN(2) == 0 {
			out = append(out, cmd{db, []any{"xgroup", "create", key, "g2", "$"}})
		}
	}
	if n > 2 && r.IntN(10) == 0 {
		out = append(out, cmd{db, []any{"xdel", key, ids[n/2]}})
	}
	return out
}

// bigKeys writes the big keys into db 0 on their own pipeline.
func (g *gen) bigKeys(ctx context.Context) error {
	r := rand.New(rand.NewPCG(g.o.seed, math.MaxUint64))
	p := g.newPipe()
	sz := func(n int) int { return max(1, int(float64(n)*g.o.bigScale)) }
	var out []cmd
	i := 0
	out = appendChunked(out, 0, []any{"hset", "big:hash"}, sz(1_000_000), func() []any { i++; return []any{"field:" + strconv.Itoa(i), elem(r)} })
	out = appendChunked(out, 0, []any{"rpush", "big:list"}, sz(1_000_000), func() []any { return []any{elem(r)} })
	out = appendChunked(out, 0, []any{"sadd", "big:set"}, sz(200_000), func() []any { return []any{elem(r) + strconv.Itoa(r.IntN(1e6))} })
	out = appendChunked(out, 0, []any{"zadd", "big:zset"}, sz(200_000), func() []any { return []any{score(r), "m" + strconv.Itoa(r.IntN(1e9))} })
	out = g.stream(out, r, 0, "big:stream", sz(100_000))
	out = append(out, cmd{0, []any{"xgroup", "create", "big:stream", "gbig", "0"}},
		cmd{0, []any{"xreadgroup", "group", "gbig", "c1", "count", "1000", "streams", "big:stream", ">"}})
	out = append(out, cmd{0, []any{"set", "big:string", text(r, sz(8<<20))}})
	out = append(out, cmd{0, []any{"xgroup", "create", "big:emptystream", "g1", "$", "mkstream"}})
	for _, c := range out {
		if err := p.add(ctx, c); err != nil {
			return err
		}
	}
	return p.flush(ctx)
}
