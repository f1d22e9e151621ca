// Command lagwatch times replication, whatever does it (ferry, a Redis
// replica, another tool), from the outside: it writes keys to the source and
// watches for them on the target.
//
//	lagwatch wait  -src A -dst B [-timeout 1h] [-replicaof]
//	    until every source master has a replica attached and online (its
//	    snapshot sent), the target holds at least as many keys as the source,
//	    and a sentinel written after that showed up on every (source master,
//	    target master) path: written after the snapshot, it arrives through
//	    the stream, so the target has applied the snapshot and the stream
//	    flows.
//	lagwatch lag   -src A -dst B [-interval 100ms] [-poll 2ms] [-csv F] [-load-out F] -- LOAD CMD...
//	    runs the load command; meanwhile writes a heartbeat (a sequence number)
//	    to the source every interval and polls the target every poll; each
//	    heartbeat's lag is the time from just before its write until the target
//	    first shows it (or a later one). After the load: one last heartbeat,
//	    and catchup_s is the time until it shows. The source's commands come
//	    from INFO commandstats deltas (-cmds), heartbeats taken out; the apply
//	    rate is those commands over the time from the load's start until the
//	    target caught up.
//	lagwatch drain -src A -dst B [-cmds N] [-timeout 1h] -- SYNC TOOL CMD...
//	    writes a sentinel on every path, starts the tool, and times until every
//	    sentinel shows on the target: the time the tool takes to apply what
//	    the source holds for it (a backlog) — then sends it SIGTERM and waits.
//
//	lagwatch replicas -pair SRC=DST [-pair SRC=DST ...] [-timeout 1h]
//	    the native anchor for a sharded source: sends REPLICAOF to every DST
//	    (standalone servers) at once, then times until each has its link up,
//	    no sync in progress and at least as many keys as its SRC (one master
//	    of a cluster, say). synced_s is the time until the last one is.
//
//	lagwatch up -addr A [-timeout 10m] [-pid P]
//	    until the server answers PING with PONG (not LOADING): polls every
//	    5 ms on one connection, cheaper than a redis-cli per poll. Fails at
//	    once when process P is gone.
//	lagwatch cpu -root PID [-interval 1s] >FILE
//	    every interval, one line "unix_seconds others_pct top": the CPU used
//	    by processes that are not PID or its descendants (other people's
//	    work on a shared machine), in % of one core, and the busiest of them.
//	    Runs until PID is gone.
//
// Output: one line of name=value pairs on stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/bench/internal/rk"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "wait":
		err = cmdWait(os.Args[2:])
	case "lag":
		err = cmdLag(os.Args[2:])
	case "drain":
		err = cmdDrain(os.Args[2:])
	case "replicas":
		err = cmdReplicas(os.Args[2:])
	case "up":
		err = cmdUp(os.Args[2:])
	case "cpu":
		err = cmdCPU(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lagwatch:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: lagwatch wait|lag|drain -src HOST:PORT -dst HOST:PORT [flags] [-- command...]")
	os.Exit(2)
}

// path is one sentinel key: a slot shared by a source master and a target
// master, with a client on each.
type path struct {
	key      string
	src, dst *redis.Client
}

type endpoints struct {
	srcT, dstT rk.Topology
	paths      []path
	clients    []*redis.Client
}

func connect(ctx context.Context, src, dst, prefix string) (*endpoints, error) {
	e := &endpoints{}
	var err error
	if e.srcT, err = rk.Discover(ctx, src); err != nil {
		return nil, err
	}
	if e.dstT, err = rk.Discover(ctx, dst); err != nil {
		return nil, err
	}
	by := map[string]*redis.Client{}
	cl := func(side, addr string) *redis.Client {
		if by[side+addr] == nil {
			by[side+addr] = rk.Client(addr, 0, 2)
			e.clients = append(e.clients, by[side+addr])
		}
		return by[side+addr]
	}
	for _, p := range rk.Pairs(e.srcT, e.dstT) {
		e.paths = append(e.paths, path{key: prefix + "{" + rk.Tag(p.Slot) + "}", src: cl("s", p.Src), dst: cl("d", p.Dst)})
	}
	if len(e.paths) == 0 {
		return nil, errors.New("source and target share no slot")
	}
	return e, nil
}

func (e *endpoints) close() {
	for _, c := range e.clients {
		c.Close()
	}
}

// write sets every sentinel to v on the source.
func (e *endpoints) write(ctx context.Context, v string) error {
	for _, p := range e.paths {
		if err := p.src.Set(ctx, p.key, v, 0).Err(); err != nil {
			return err
		}
	}
	return nil
}

// seen reports whether every sentinel on the target satisfies ok.
func (e *endpoints) seen(ctx context.Context, ok func(string) bool) bool {
	for _, p := range e.paths {
		v, err := p.dst.Get(ctx, p.key).Result()
		if err != nil || !ok(v) {
			return false
		}
	}
	return true
}

func parse(fs *flag.FlagSet, args []string) {
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
}

func cmdWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	src := fs.String("src", "", "source: server or any cluster node")
	dst := fs.String("dst", "", "target: server or any cluster node")
	timeout := fs.Duration("timeout", time.Hour, "give up after")
	replicaOf := fs.Bool("replicaof", false, "send REPLICAOF <src> to the target first (a native replica), and also wait for master_link_status:up and master_sync_in_progress:0")
	parse(fs, args)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	e, err := connect(ctx, *src, *dst, "__bench:sync:")
	if err != nil {
		return err
	}
	defer e.close()
	t0 := time.Now()
	var dc *redis.Client
	linkUp := func() bool { return true }
	if *replicaOf {
		if e.srcT.Cluster || e.dstT.Cluster {
			return errors.New("-replicaof: standalone source and target only")
		}
		host, port, _ := strings.Cut(*src, ":")
		dc = rk.Client(*dst, 0, 1)
		defer dc.Close()
		linkUp = func() bool {
			info, err := dc.Info(ctx, "replication").Result()
			return err == nil && rk.Field(info, "master_link_status") == "up" && rk.Field(info, "master_sync_in_progress") == "0"
		}
		if err := dc.Do(ctx, "replicaof", host, port).Err(); err != nil {
			return err
		}
	}
	// Values carry a token of this run: sentinels left by an earlier run
	// (and copied with the data) never count.
	token := strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	var seq, armed int64
	var countsAt time.Duration
	for ctx.Err() == nil {
		seq++
		if err := e.write(ctx, token+strconv.FormatInt(seq, 10)); err != nil {
			return err
		}
		if armed == 0 {
			s, err1 := rk.TotalKeys(ctx, e.srcT)
			d, err2 := rk.TotalKeys(ctx, e.dstT)
			if err1 == nil && err2 == nil && d >= s && linkUp() && replicasOnline(ctx, e.srcT) {
				armed, countsAt = seq, time.Since(t0)
			}
		} else if e.seen(ctx, func(v string) bool { return seqOf(v, token) >= armed }) {
			fmt.Printf("synced_s=%.3f counts_equal_s=%.3f\n", time.Since(t0).Seconds(), countsAt.Seconds())
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("target not in sync after %s", *timeout)
}

// cmdStats sums the calls of the given commands in INFO commandstats.
// replicasOnline reports whether every master has at least one replica and
// all its replicas are online (past the snapshot transfer).
func replicasOnline(ctx context.Context, t rk.Topology) bool {
	for _, m := range t.Masters {
		c := rk.Client(m.Addr, 0, 1)
		info, err := c.Info(ctx, "replication").Result()
		c.Close()
		if err != nil {
			return false
		}
		n, _ := strconv.Atoi(rk.Field(info, "connected_slaves"))
		if n == 0 {
			return false
		}
		for i := range n {
			if !strings.Contains(rk.Field(info, "slave"+strconv.Itoa(i)), "state=online") {
				return false
			}
		}
	}
	return true
}

// seqOf returns the sequence number in v when v belongs to this run's
// token, else -1.
func seqOf(v, token string) int64 {
	rest, ok := strings.CutPrefix(v, token)
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func cmdStats(ctx context.Context, c *redis.Client, cmds []string) (int64, error) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, name := range cmds {
		v := rk.Field(info, "cmdstat_"+name)
		if calls, ok := strings.CutPrefix(strings.Split(v, ",")[0], "calls="); ok {
			n, _ := strconv.ParseInt(calls, 10, 64)
			sum += n
		}
	}
	return sum, nil
}

func totalCommands(ctx context.Context, c *redis.Client) int64 {
	info, _ := c.Info(ctx, "stats").Result()
	n, _ := strconv.ParseInt(rk.Field(info, "total_commands_processed"), 10, 64)
	return n
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func cmdLag(args []string) error {
	fs := flag.NewFlagSet("lag", flag.ContinueOnError)
	src := fs.String("src", "", "source server (standalone)")
	dst := fs.String("dst", "", "target server (standalone)")
	interval := fs.Duration("interval", 100*time.Millisecond, "heartbeat interval")
	poll := fs.Duration("poll", 2*time.Millisecond, "target poll interval")
	csvOut := fs.String("csv", "", "write one line per heartbeat: seq,sent_s,lag_ms")
	loadOut := fs.String("load-out", "", "the load command's output (default: discarded)")
	cmdList := fs.String("cmds", "set,lpush,incr,hset", "the load's commands, counted in the source's INFO commandstats")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up waiting for the target after the load")
	parse(fs, args)
	if fs.NArg() == 0 {
		return errors.New("lag: no load command after --")
	}
	ctx := context.Background()
	sc, dc := rk.Client(*src, 0, 2), rk.Client(*dst, 0, 2)
	defer sc.Close()
	defer dc.Close()
	cmds := strings.Split(*cmdList, ",")
	const hb = "__bench:hb"
	token := strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	before, err := cmdStats(ctx, sc, cmds)
	if err != nil {
		return err
	}
	tgtBefore := totalCommands(ctx, dc)

	load := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	if *loadOut != "" {
		f, err := os.Create(*loadOut)
		if err != nil {
			return err
		}
		defer f.Close()
		load.Stdout, load.Stderr = f, f
	}
	var mu sync.Mutex
	sent := map[int64]time.Time{}
	lags := map[int64]float64{}
	var lastSeen, polls int64
	var lastSeenAt time.Time

	t0 := time.Now()
	if err := load.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- load.Wait() }()

	stopPoll := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		tk := time.NewTicker(*poll)
		defer tk.Stop()
		for {
			select {
			case <-stopPoll:
				return
			case <-tk.C:
			}
			v, err := dc.Get(ctx, hb).Result()
			now := time.Now()
			mu.Lock()
			polls++
			if n := seqOf(v, token); err == nil && n > lastSeen {
				for s := lastSeen + 1; s <= n; s++ {
					if at, ok := sent[s]; ok {
						lags[s] = now.Sub(at).Seconds() * 1000
					}
				}
				lastSeen, lastSeenAt = n, now
			}
			mu.Unlock()
		}
	}()
	var seq int64
	beat := func() (int64, error) {
		seq++
		mu.Lock()
		sent[seq] = time.Now()
		mu.Unlock()
		return seq, sc.Set(ctx, hb, token+strconv.FormatInt(seq, 10), 0).Err()
	}
	tk := time.NewTicker(*interval)
	var loadErr error
loop:
	for {
		select {
		case loadErr = <-done:
			break loop
		case <-tk.C:
			if _, err := beat(); err != nil {
				return err
			}
		}
	}
	tk.Stop()
	tEnd := time.Now()
	duringLoad := seq
	after, err := cmdStats(ctx, sc, cmds)
	if err != nil {
		return err
	}
	final, err := beat()
	if err != nil {
		return err
	}
	var caught time.Time
	deadline := time.Now().Add(*timeout)
	for {
		mu.Lock()
		if lastSeen >= final {
			caught = lastSeenAt
		}
		mu.Unlock()
		if !caught.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			close(stopPoll)
			return fmt.Errorf("target did not catch up within %s after the load", *timeout)
		}
		time.Sleep(time.Millisecond)
	}
	close(stopPoll)
	<-pollDone
	tgtAfter := totalCommands(ctx, dc)

	var ls []float64
	var lines []string
	for s := int64(1); s <= final; s++ {
		l, ok := lags[s]
		if !ok {
			continue
		}
		if s <= duringLoad {
			ls = append(ls, l)
		}
		lines = append(lines, fmt.Sprintf("%d,%.3f,%.2f", s, sent[s].Sub(t0).Seconds(), l))
	}
	if *csvOut != "" {
		_ = os.WriteFile(*csvOut, []byte("seq,sent_s,lag_ms\n"+strings.Join(lines, "\n")+"\n"), 0o644)
	}
	slices.Sort(ls)
	srcCmds := after - before - duringLoad // heartbeats are SETs too
	loadS := tEnd.Sub(t0).Seconds()
	applyS := caught.Sub(t0).Seconds()
	tgtCmds := tgtAfter - tgtBefore - polls - 1
	fmt.Printf("load_s=%.3f src_cmds=%d write_rate=%.0f apply_s=%.3f apply_rate=%.0f lag_p50_ms=%.1f lag_p99_ms=%.1f lag_max_ms=%.1f catchup_s=%.3f heartbeats=%d tgt_cmds=%d load_exit=%v\n",
		loadS, srcCmds, float64(srcCmds)/loadS, applyS, float64(srcCmds)/applyS,
		percentile(ls, 0.5), percentile(ls, 0.99), percentile(ls, 1), caught.Sub(tEnd).Seconds(), len(ls), tgtCmds, loadErr == nil)
	return nil
}

func cmdDrain(args []string) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	src := fs.String("src", "", "source: server or any cluster node")
	dst := fs.String("dst", "", "target: server or any cluster node")
	cmds := fs.Int64("cmds", 0, "commands in the backlog (for the rate)")
	timeout := fs.Duration("timeout", time.Hour, "give up after")
	stopWait := fs.Duration("stop-wait", 2*time.Minute, "how long the tool may take to stop after SIGTERM")
	toolOut := fs.String("tool-out", "", "the tool's stdout and stderr (default: lagwatch's stderr)")
	parse(fs, args)
	if fs.NArg() == 0 {
		return errors.New("drain: no command after --")
	}
	ctx := context.Background()
	e, err := connect(ctx, *src, *dst, "__bench:drain:")
	if err != nil {
		return err
	}
	defer e.close()
	token := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := e.write(ctx, token); err != nil {
		return err
	}
	tool := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	tool.Stdout, tool.Stderr = os.Stderr, os.Stderr
	if *toolOut != "" {
		f, err := os.Create(*toolOut)
		if err != nil {
			return err
		}
		defer f.Close()
		tool.Stdout, tool.Stderr = f, f
	}
	t0 := time.Now()
	if err := tool.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- tool.Wait() }()
	deadline := t0.Add(*timeout)
	var drain time.Duration
	for {
		if e.seen(ctx, func(v string) bool { return v == token }) {
			drain = time.Since(t0)
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the tool exited before the target caught up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			_ = tool.Process.Kill()
			return fmt.Errorf("target did not catch up within %s", *timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = tool.Process.Signal(syscall.SIGTERM)
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(*stopWait):
		_ = tool.Process.Kill()
		exitErr = errors.New("killed: did not stop after SIGTERM")
		<-exited
	}
	rate := 0.0
	if *cmds > 0 {
		rate = float64(*cmds) / drain.Seconds()
	}
	fmt.Printf("drain_s=%.3f cmds=%d apply_rate=%.0f paths=%d tool_exit_ok=%v\n", drain.Seconds(), *cmds, rate, len(e.paths), exitErr == nil)
	if exitErr != nil {
		fmt.Fprintln(os.Stderr, "lagwatch: tool stop:", exitErr)
	}
	return nil
}

// pairList is a repeatable -pair SRC=DST flag.
type pairList [][2]string

func (p *pairList) String() string { return fmt.Sprint(*p) }
func (p *pairList) Set(v string) error {
	a, b, ok := strings.Cut(v, "=")
	if !ok || a == "" || b == "" {
		return fmt.Errorf("-pair %q: want SRC=DST", v)
	}
	*p = append(*p, [2]string{a, b})
	return nil
}

func cmdReplicas(args []string) error {
	fs := flag.NewFlagSet("replicas", flag.ContinueOnError)
	var pairs pairList
	fs.Var(&pairs, "pair", "SRC=DST: DST (a standalone server) replicates SRC; repeat for every source master")
	timeout := fs.Duration("timeout", time.Hour, "give up after")
	parse(fs, args)
	if len(pairs) == 0 {
		return errors.New("replicas: no -pair")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	type side struct{ src, dst *redis.Client }
	sides := make([]side, len(pairs))
	for i, p := range pairs {
		sides[i] = side{rk.Client(p[0], 0, 1), rk.Client(p[1], 0, 1)}
		defer sides[i].src.Close()
		defer sides[i].dst.Close()
	}
	// REPLICAOF to all at once: the sources fork and stream in parallel, as
	// one replica per shard would after a failover of the whole tier.
	t0 := time.Now()
	errs := make([]error, len(pairs))
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Go(func() {
			host, port, _ := strings.Cut(p[0], ":")
			errs[i] = sides[i].dst.Do(ctx, "replicaof", host, port).Err()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	keys := func(c *redis.Client) int64 {
		info, err := c.Info(ctx, "keyspace").Result()
		if err != nil {
			return -1
		}
		var n int64
		for _, k := range rk.Keyspace(info) {
			n += k
		}
		return n
	}
	done := make([]time.Duration, len(pairs))
	left := len(pairs)
	for left > 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("replicas not in sync after %s", *timeout)
		}
		for i, sd := range sides {
			if done[i] != 0 {
				continue
			}
			info, err := sd.dst.Info(ctx, "replication").Result()
			if err != nil || rk.Field(info, "master_link_status") != "up" || rk.Field(info, "master_sync_in_progress") != "0" {
				continue
			}
			if d, s := keys(sd.dst), keys(sd.src); d >= 0 && s >= 0 && d >= s {
				done[i] = time.Since(t0)
				left--
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := []string{fmt.Sprintf("synced_s=%.3f", slices.Max(done).Seconds())}
	for i, d := range done {
		out = append(out, fmt.Sprintf("pair%d_s=%.3f", i, d.Seconds()))
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

func cmdUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after")
	pid := fs.Int("pid", 0, "the server's process: fail when it is gone, or when another server answers")
	parse(fs, args)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: *addr, Protocol: 2, DisableIdentity: true, PoolSize: 1,
		DialTimeout: time.Second, ReadTimeout: 10 * time.Second, MaxRetries: -1})
	defer c.Close()
	t0 := time.Now()
	for time.Since(t0) < *timeout {
		if v, err := c.Ping(ctx).Result(); err == nil && v == "PONG" {
			up := time.Since(t0)
			if *pid > 0 {
				info, err := c.Info(ctx, "server").Result()
				if err != nil {
					return err
				}
				if got := rk.Field(info, "process_id"); got != strconv.Itoa(*pid) {
					return fmt.Errorf("%s: answered by another server (process %s, not %d)", *addr, got, *pid)
				}
			}
			fmt.Printf("up_s=%.3f\n", up.Seconds())
			return nil
		}
		if *pid > 0 && gone(*pid) {
			return fmt.Errorf("%s: process %d is gone", *addr, *pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s: no PONG within %s", *addr, *timeout)
}

// gone reports whether a process has exited (a zombie counts as gone).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) != nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

type procStat struct {
	ppid  int
	ticks int64
	comm  string
}

// procs reads pid, parent, CPU ticks (user+system) and name of every process.
func procs() map[int]procStat {
	out := map[int]procStat{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[pid] = procStat{ppid: ppid, ticks: ut + st, comm: s[open+1 : close]}
	}
	return out
}

func cmdCPU(args []string) error {
	fs := flag.NewFlagSet("cpu", flag.ContinueOnError)
	root := fs.Int("root", 0, "our process tree's root")
	interval := fs.Duration("interval", time.Second, "sampling interval")
	parse(fs, args)
	const hz = 100 // USER_HZ on Linux
	mine := func(ps map[int]procStat, pid int) bool {
		for i := 0; pid > 1 && i < 64; i++ {
			if pid == *root {
				return true
			}
			pid = ps[pid].ppid
		}
		return false
	}
	prev, at := procs(), time.Now()
	self := os.Getpid()
	for !gone(*root) {
		time.Sleep(*interval)
		cur, now := procs(), time.Now()
		secs := now.Sub(at).Seconds()
		var total float64
		top, topPct := "", 0.0
		for pid, p := range cur {
			q, ok := prev[pid]
			if !ok || pid == self || mine(cur, pid) {
				continue
			}
			pct := float64(p.ticks-q.ticks) / hz / secs * 100
			total += pct
			if pct > topPct {
				top, topPct = fmt.Sprintf("%s(pid %d, %.0f%%)", strings.ReplaceAll(p.comm, " ", "_"), pid, pct), pct
			}
		}
		fmt.Printf("%.1f %.0f %s\n", float64(now.UnixNano())/1e9, total, top)
		prev, at = cur, now
	}
	return nil
}
