package verify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"golang.org/x/time/rate"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/resp"
)

// ownPrefix is ferry's namespace.
const ownPrefix = "__ferry:"

// ferrys reports whether k is one of ferry's own keys, which verify ignores
// on both sides: a job's marker (__ferry:<job>:pos), a cluster slot or stream
// marker (__ferry:{tag}:…), a probe, the scan reader's scratch keys. Any
// other key under __ferry: is data (a user's key, or another job's marker on
// a source that is itself a target) and is compared like any key.
func ferrys(k string) bool {
	rest, ok := strings.CutPrefix(k, ownPrefix)
	if !ok {
		return false
	}
	if strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, "probe:") || strings.HasPrefix(rest, "flush-watch:") ||
		strings.HasSuffix(rest, ":pos") || strings.HasSuffix(rest, ":probe") || strings.HasSuffix(rest, ":lease") {
		return true
	}
	// __ferry:<job>:pos:<n>, the markers of a cluster source's later shards.
	i := strings.LastIndex(rest, ":pos:")
	if i < 0 || i+5 == len(rest) {
		return false
	}
	for _, c := range rest[i+5:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// side is one deployment (the source or the target) as verify reads it: a
// standalone server (one client per db) or a cluster (a cluster client for
// key reads, every master for SCAN).
type side struct {
	role    string // "source" | "target"
	ep      conf.Endpoint
	tls     *tls.Config
	cluster bool
	addr    string // standalone: the server's host:port (sentinel: the master found)
	pool    int
	cc      *redis.ClusterClient

	mu  sync.Mutex
	dbs map[int]*redis.Client

	lim   *rate.Limiter // nil: unlimited
	burst int
	ops   atomic.Int64 // commands sent

	noMulti  atomic.Bool // SMISMEMBER/ZMSCORE unknown (Redis < 6.2)
	fieldTTL bool        // holds per-field hash TTLs (HPEXPIRETIME known: Redis 7.4+)
}

// openSide connects to the deployment and finds out whether it is a cluster.
func openSide(ctx context.Context, role string, ep conf.Endpoint, maxOps, pool int) (*side, error) {
	if len(ep.Hosts) == 0 {
		return nil, fmt.Errorf("%s: no address", role)
	}
	t, err := ep.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	s := &side{role: role, ep: ep, tls: t, pool: pool, dbs: map[int]*redis.Client{}}
	if maxOps > 0 {
		s.burst = max(1, maxOps/10)
		s.lim = rate.NewLimiter(rate.Limit(maxOps), s.burst)
	}
	hosts := ep.Hosts
	if ep.Scheme == "sentinel" {
		addr, err := ctl.SentinelMaster(ctx, ep)
		if err != nil {
			return nil, fmt.Errorf("%s %w", role, err)
		}
		hosts = []string{addr}
	}
	var lastErr error
	for _, h := range hosts {
		c := redis.NewClient(s.options(h, 0))
		info, err := c.Info(ctx, "cluster").Result()
		c.Close()
		if err != nil {
			lastErr = describeErr(role, h, err)
			continue
		}
		s.addr = h
		s.cluster = ctl.InfoField(info, "cluster_enabled") == "1"
		s.fieldTTL = knowsFieldTTL(ctx, s.options(h, 0))
		break
	}
	if s.addr == "" {
		return nil, lastErr
	}
	if s.cluster {
		s.cc = redis.NewClusterClient(s.clusterOptions(hosts))
		if err := s.cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		}); err != nil {
			s.cc.Close()
			return nil, fmt.Errorf("%s cluster via %s: %w", role, s.addr, err)
		}
	}
	return s, nil
}

// knowsFieldTTL asks a server whether it knows HPEXPIRETIME by calling it on
// a key that does not exist (a managed service may forbid COMMAND INFO; the
// call itself is always allowed to whoever may read hashes).
func knowsFieldTTL(ctx context.Context, o *redis.Options) bool {
	c := redis.NewClient(o)
	defer c.Close()
	err := c.Do(ctx, "HPEXPIRETIME", "__ferry:verify:probe", "FIELDS", 1, "f").Err()
	return err == nil
}

func (s *side) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.dbs {
		c.Close()
	}
	s.dbs = map[int]*redis.Client{}
	if s.cc != nil {
		s.cc.Close()
	}
}

func (s *side) connName() string {
	if s.role == "source" {
		return "ferry-verify-0"
	}
	return "ferry-verify-1"
}

func (s *side) options(addr string, db int) *redis.Options {
	name := s.connName()
	return &redis.Options{
		Addr:        addr,
		Username:    s.ep.Username,
		Password:    s.ep.Password,
		DB:          db,
		TLSConfig:   s.tls,
		DialTimeout: dialTimeout(s.ep),
		// Values of any size, but checked as they arrive (see resp.Guard).
		Dialer:                   dial.Guarded(dialTimeout(s.ep), s.tls, resp.ValueLimits()),
		ReadTimeout:              30 * time.Second,
		WriteTimeout:             30 * time.Second,
		Protocol:                 2,
		DisableIdentity:          true,
		PoolSize:                 s.pool,
		MaxRetries:               2,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		// The name only helps operators read CLIENT LIST; a server that
		// forbids SETNAME must not make the connection fail.
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			cn.ClientSetName(ctx, name)
			return nil
		},
	}
}

func (s *side) clusterOptions(seeds []string) *redis.ClusterOptions {
	name := s.connName()
	return &redis.ClusterOptions{
		Addrs:       seeds,
		Username:    s.ep.Username,
		Password:    s.ep.Password,
		TLSConfig:   s.tls,
		DialTimeout: dialTimeout(s.ep),
		// Values of any size, but checked as they arrive (see resp.Guard).
		Dialer:                   dial.Guarded(dialTimeout(s.ep), s.tls, resp.ValueLimits()),
		ReadTimeout:              30 * time.Second,
		WriteTimeout:             30 * time.Second,
		Protocol:                 2,
		DisableIdentity:          true,
		PoolSize:                 s.pool,
		MaxRetries:               2,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			cn.ClientSetName(ctx, name)
			return nil
		},
	}
}

func dialTimeout(ep conf.Endpoint) time.Duration {
	if ep.DialTimeout > 0 {
		return ep.DialTimeout
	}
	return 5 * time.Second
}

// client returns the client that reads keys of db.
func (s *side) client(db int) (redis.UniversalClient, error) {
	if s.cluster {
		if db != 0 {
			return nil, fmt.Errorf("%s is a cluster: it has db 0 only, not db %d", s.role, db)
		}
		return s.cc, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.dbs[db]
	if !ok {
		c = redis.NewClient(s.options(s.addr, db))
		s.dbs[db] = c
	}
	return c, nil
}

// take waits until n more commands may be sent.
func (s *side) take(ctx context.Context, n int) error {
	s.ops.Add(int64(n))
	if s.lim == nil {
		return ctx.Err()
	}
	for n > 0 {
		k := min(n, s.burst)
		if err := s.lim.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		n -= k
	}
	return nil
}

// exec sends a pipeline. Errors that Redis replied to single commands stay
// on their commands; a failure of the connection is returned.
func (s *side) exec(ctx context.Context, p redis.Pipeliner) error {
	_, err := s.execAt(ctx, p)
	return err
}

// execAt is exec that also tells when the pipeline ran (the middle of its
// round trip, after any wait for the throttle).
func (s *side) execAt(ctx context.Context, p redis.Pipeliner) (time.Time, error) {
	n := p.Len()
	if n == 0 {
		return time.Now(), nil
	}
	if err := s.take(ctx, n); err != nil {
		return time.Time{}, err
	}
	t0 := time.Now()
	cmds, err := p.Exec(ctx)
	at := t0.Add(time.Since(t0) / 2)
	if err == nil || isReplyErr(err) {
		// Each command carries its own reply error; a connection failure
		// would show on every command: look for one that is not a reply.
		for _, c := range cmds {
			if e := c.Err(); e != nil && !isReplyErr(e) {
				return at, s.wrap(e)
			}
		}
		return at, nil
	}
	return at, s.wrap(err)
}

// do sends one command.
func (s *side) do(ctx context.Context, c redis.UniversalClient, args ...any) (any, error) {
	if err := s.take(ctx, 1); err != nil {
		return nil, err
	}
	v, err := c.Do(ctx, args...).Result()
	if err != nil && !isReplyErr(err) {
		return nil, s.wrap(err)
	}
	return v, err
}

func (s *side) wrap(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return describeErr(s.role, s.addr, err)
}

// isReplyErr reports whether err is Redis's reply to one command (including
// a nil reply), not a failure of the connection.
func isReplyErr(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return true
	}
	var re redis.Error
	return errors.As(err, &re)
}

// describeErr turns a connection error into one clear line naming the
// side (see ctl.Describe).
func describeErr(role, addr string, err error) error {
	return fmt.Errorf("%s: %w", role, ctl.Describe(addr, err))
}

// dbsWithKeys lists the dbs that hold keys (a cluster: db 0).
func (s *side) dbsWithKeys(ctx context.Context) ([]int, error) {
	if s.cluster {
		return []int{0}, nil
	}
	c, err := s.client(0)
	if err != nil {
		return nil, err
	}
	v, err := s.do(ctx, c, "INFO", "keyspace")
	if err != nil {
		return nil, fmt.Errorf("%s %s: INFO keyspace: %w", s.role, s.addr, err)
	}
	txt, _ := v.(string)
	var dbs []int
	for _, line := range strings.Split(txt, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "db")
		if !ok {
			continue
		}
		n, _, ok := strings.Cut(rest, ":")
		if db, err := strconv.Atoi(n); ok && err == nil {
			dbs = append(dbs, db)
		}
	}
	sort.Ints(dbs)
	return dbs, nil
}

// nodes calls fn for every server that holds keys of db: the standalone
// server, or every master of a cluster (concurrently).
func (s *side) nodes(ctx context.Context, db int, fn func(ctx context.Context, c *redis.Client) error) error {
	if !s.cluster {
		c, err := s.client(db)
		if err != nil {
			return err
		}
		return fn(ctx, c.(*redis.Client))
	}
	if db != 0 {
		return fmt.Errorf("%s is a cluster: it has db 0 only, not db %d", s.role, db)
	}
	return s.cc.ForEachMaster(ctx, fn)
}

// scan calls emit with the keys of db (every master of a cluster), in
// batches of at most batch keys, skipping ferry's own keys. emit may be
// called concurrently for a cluster.
func (s *side) scan(ctx context.Context, db, batch int, emit func(keys []string) error) error {
	return s.nodes(ctx, db, func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		var buf []string
		for {
			if err := s.take(ctx, 1); err != nil {
				return err
			}
			keys, next, err := c.Scan(ctx, cursor, "", int64(max(batch, 100))).Result()
			if err != nil {
				return fmt.Errorf("%s %s db %d: SCAN: %w", s.role, c.Options().Addr, db, err)
			}
			for _, k := range keys {
				if ferrys(k) {
					continue
				}
				buf = append(buf, k)
				if len(buf) >= batch {
					if err := emit(buf); err != nil {
						return err
					}
					buf = nil
				}
			}
			if next == 0 {
				break
			}
			cursor = next
		}
		if len(buf) > 0 {
			return emit(buf)
		}
		return nil
	})
}

// sample returns up to n distinct random keys of db (RANDOMKEY; a cluster:
// from every master in proportion to its size). all is true when the db has
// no more than n keys: the caller should then scan it whole.
func (s *side) sample(ctx context.Context, db, n int) (keys []string, all bool, err error) {
	type node struct {
		c    *redis.Client
		size int64
	}
	var mu sync.Mutex
	var nodes []node
	var total int64
	err = s.nodes(ctx, db, func(ctx context.Context, c *redis.Client) error {
		v, err := s.do(ctx, c, "DBSIZE")
		if err != nil {
			return fmt.Errorf("%s %s db %d: DBSIZE: %w", s.role, c.Options().Addr, db, err)
		}
		size, _ := v.(int64)
		mu.Lock()
		nodes = append(nodes, node{c, size})
		total += size
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	// A db at most twice the sample is compared whole: as cheap, and exact
	// (drawing n distinct keys out of barely more by RANDOMKEY takes many
	// redraws).
	if total <= 2*int64(n) {
		return nil, true, nil
	}
	seen := map[string]bool{}
	for _, nd := range nodes {
		if nd.size == 0 {
			continue
		}
		want := int((int64(n)*nd.size + total - 1) / total)
		got := 0
		// Duplicates and ferry's own keys are drawn again, within limits.
		for attempt := 0; attempt < 4 && got < want; attempt++ {
			p := nd.c.Pipeline()
			cmds := make([]*redis.Cmd, 0, want-got)
			for i := got; i < want; i++ {
				cmds = append(cmds, p.Do(ctx, "RANDOMKEY"))
			}
			if err := s.exec(ctx, p); err != nil {
				return nil, false, err
			}
			for _, c := range cmds {
				k, err := c.Text()
				if err != nil || ferrys(k) || seen[k] {
					continue
				}
				seen[k] = true
				keys = append(keys, k)
				got++
			}
		}
	}
	return keys, false, nil
}
