// Package ctl is ferry's control plane to a Redis server: the short
// commands around the data path (INFO, CONFIG GET, COMMAND, probes, marker
// reads, FLUSHALL) sent on go-redis clients, and what their replies and
// errors mean. The data path (replication stream, fenced batches) does not
// go through here: it has its own connections (reader, writer).
//
// Every client is built on dial: ferry's TLS handshake with a clear error,
// and resp.Guard under go-redis, so that a hostile or broken server cannot
// make a control connection allocate or recurse without bound.
//
// Used by job (source and target discovery, markers, emptiness checks),
// topology and verify; it imports nothing of ferry's above conf, dial, resp
// and fault.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/resp"
)

// Options are go-redis options for a control connection to o's server,
// named name (CLIENT SETNAME; a server that forbids it does not fail the
// connection), on db. Replies are checked with resp.ControlLimits.
func Options(o dial.Options, name string, db int) *redis.Options {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	// Dialer: ferry's own dial, so that a TLS handshake that gets no TLS
	// answer fails within the timeout with a message that says what to check.
	return &redis.Options{
		Addr:            o.Addr,
		Username:        o.Username,
		Password:        o.Password,
		DB:              db,
		TLSConfig:       o.TLS,
		DialTimeout:     timeout,
		Dialer:          dial.Guarded(timeout, o.TLS, resp.ControlLimits()),
		ReadTimeout:     30 * time.Second,
		WriteTimeout:    30 * time.Second,
		Protocol:        2,
		DisableIdentity: true,
		PoolSize:        4,
		MaxRetries:      2,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			cn.ClientSetName(ctx, name)
			return nil
		},
	}
}

// New is a control client of o's server, db 0, named ferry-ctl-0.
func New(o dial.Options) *redis.Client {
	return redis.NewClient(Options(o, "ferry-ctl-0", 0))
}

// NewBounded is New for work that must not outlast d (a lease renewal,
// what a stop does last): every read and write, and a context's deadline,
// bound each command.
func NewBounded(o dial.Options, d time.Duration) *redis.Client {
	opt := Options(o, "ferry-ctl-0", 0)
	opt.ReadTimeout, opt.WriteTimeout, opt.ContextTimeoutEnabled = d, d, true
	opt.DialTimeout = min(opt.DialTimeout, d)
	opt.MaxRetries = 0
	return redis.NewClient(opt)
}

// Describe turns a control connection's error into one clear line,
// classified (see package fault): refused credentials and other permanent
// errors as fault errors, a refused or timed-out connection in words, a TLS
// handshake as dial says it.
func Describe(addr string, err error) error {
	if what := fault.Credentials(err); what != "" {
		fe := fault.New(addr, "AUTH", err)
		fe.Err = fmt.Errorf("%w: %s (%v)", dial.ErrAuth, what, err)
		return fe
	}
	if fault.IsPermanent(err) {
		return fault.New(addr, "", err)
	}
	var ne net.Error
	var he *dial.HandshakeError
	switch {
	case errors.As(err, &he):
		return he // says what to check; its timeout is not the network's
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connect %s: connection refused (is the server running and listening on that port?)", addr)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("connect %s: timed out", addr)
	case strings.Contains(err.Error(), addr):
		return err // dial's errors name the address already
	}
	return fmt.Errorf("%s: %w", addr, err)
}

// InfoField is the value of "field:value" in an INFO (or CLUSTER INFO)
// reply, "" when absent.
func InfoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// IsCluster reports whether the server runs in cluster mode.
func IsCluster(ctx context.Context, c redis.Cmdable) (bool, error) {
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		return false, err
	}
	return InfoField(info, "cluster_enabled") == "1", nil
}

// MasterOffset is a server's master_repl_offset.
func MasterOffset(ctx context.Context, c redis.Cmdable) (int64, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(InfoField(info, "master_repl_offset"), 10, 64)
}

// Keyspace is one field of INFO keyspace per db: "keys", "expires", or
// "subexpiry" (Redis 7.4+: hashes with field TTLs), from lines like
// "db0:keys=3,expires=0,avg_ttl=0,subexpiry=2".
func Keyspace(info, field string) map[int]int64 {
	out := map[int]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "db")
		if !ok {
			continue
		}
		dbs, stats, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		db, err := strconv.Atoi(dbs)
		if err != nil {
			continue
		}
		for kv := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(kv, field+"="); ok {
				out[db], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// Sum adds a Keyspace result up over the dbs.
func Sum(m map[int]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// RDBVersion is the RDB version a Redis release (redis_version of INFO
// server) writes; an unreadable version counts as old (6), so that values
// are rewritten as commands rather than restored in a format it may lack.
func RDBVersion(redisVersion string) int {
	var major, minor int
	fmt.Sscanf(redisVersion, "%d.%d", &major, &minor)
	switch {
	case major > 7 || (major == 7 && minor >= 4):
		return 12
	case major == 7 && minor >= 2:
		return 11
	case major == 7:
		return 10
	case major == 6, major == 5:
		return 9
	case major == 4:
		return 8
	}
	return 6
}

// DialOptions are the connection options for the node at addr of the
// deployment e (its credentials, TLS and dial timeout).
func DialOptions(e conf.Endpoint, addr string) (dial.Options, error) {
	t, err := e.TLSConfig()
	if err != nil {
		return dial.Options{}, err
	}
	return dial.Options{Addr: addr, Username: e.Username, Password: e.Password, TLS: t, Timeout: e.DialTimeout}, nil
}

// SentinelMaster asks the sentinels of e (a sentinel:// endpoint) where its
// master e.SentinelMaster is now, in turn until one knows. Sync and verify
// both ask here. The sentinels are dialled with the endpoint's TLS
// settings, as its servers are: a deployment that takes only TLS runs its
// sentinels with TLS too. They have credentials of their own.
func SentinelMaster(ctx context.Context, e conf.Endpoint) (string, error) {
	t, err := e.TLSConfig()
	if err != nil {
		return "", err
	}
	name := e.SentinelMaster
	var errs []string
	refused, nRefused := "", 0 // how sentinels refused the credentials, and how many did
	for _, h := range e.Hosts {
		o := Options(dial.Options{Addr: h, Username: e.SentinelUsername, Password: e.SentinelPassword, TLS: t, Timeout: e.DialTimeout}, "ferry-ctl-0", 0)
		// The next sentinel is the retry.
		o.MaxRetries = 1
		s := redis.NewSentinelClient(o)
		addr, err := s.GetMasterAddrByName(ctx, name).Result()
		s.Close()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		if err == nil || errors.Is(err, redis.Nil) {
			errs = append(errs, h+": no such master")
			continue
		}
		if what := fault.Credentials(err); what != "" {
			refused, nRefused = what, nRefused+1
		}
		errs = append(errs, Describe(h, err).Error())
	}
	if nRefused > 0 && nRefused == len(e.Hosts) {
		// Every sentinel refused: asking again gives the same answer. The
		// job stops with the fix rather than retry, and the fix names the
		// sentinels' own credentials, which are not the master's.
		return "", fault.PermanentErr("sentinel "+strings.Join(e.Hosts, ","), "AUTH",
			"correct sentinel_username / sentinel_password: the sentinels' own credentials, not the master's",
			fmt.Errorf("%w: %s", dial.ErrAuth, refused))
	}
	return "", fmt.Errorf("sentinel: master %q not found (%s)", name, strings.Join(errs, "; "))
}
