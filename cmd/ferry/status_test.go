package main

// The status server and the progress bar as the CLI runs them: a live sync
// seen through /status, /metrics and /healthz; busy addresses; the bar fed
// from the job's state.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/job"
	"github.com/ferry-dev/ferry/reader"
	"github.com/ferry-dev/ferry/status"
	"github.com/ferry-dev/ferry/writer"
)

// freeStatusAddr is a loopback address with a free port, for status_addr.
func freeStatusAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
}

// httpGet returns the status code and body of a GET; err when the server
// does not answer.
func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// statusJobs is GET /status; nil while the server does not answer.
func statusJobs(t *testing.T, base string) []status.Job {
	t.Helper()
	code, body, err := httpGet(base + "/status")
	if err != nil {
		return nil
	}
	if code != http.StatusOK {
		t.Fatalf("GET /status: %d %s", code, body)
	}
	var v struct {
		Jobs []status.Job `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET /status: %v\n%s", err, body)
	}
	return v.Jobs
}

// statusJob is GET /status/<name>; ok false while it does not answer.
func statusJob(t *testing.T, base, name string) (status.Job, bool) {
	t.Helper()
	code, body, err := httpGet(base + "/status/" + name)
	if err != nil || code == http.StatusNotFound {
		return status.Job{}, false
	}
	var j status.Job
	if code != http.StatusOK {
		t.Fatalf("GET /status/%s: %d %s", name, code, body)
	}
	if err := json.Unmarshal([]byte(body), &j); err != nil {
		t.Fatalf("GET /status/%s: %v\n%s", name, err, body)
	}
	return j, true
}

// scrape is GET /metrics, parsed.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := httpGet(base + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", code, err, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("GET /metrics: not the Prometheus text format: %v\n%s", err, body)
	}
	return mfs
}

// metric is the value of the sample of family name whose labels include
// labels ("k=v" pairs); ok false when there is none.
func metric(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func wantMetric(t *testing.T, mfs map[string]*dto.MetricFamily, cond func(float64) bool, what, name string, labels ...string) {
	t.Helper()
	v, ok := metric(mfs, name, labels...)
	if !ok {
		t.Errorf("/metrics: no %s%v", name, labels)
		return
	}
	if !cond(v) {
		t.Errorf("/metrics: %s%v = %v, want %s", name, labels, v, what)
	}
}

// TestStatusLiveSync: while a sync runs, /status shows it streaming, its
// lag falls to 0 once writes stop, a killed target connection shows as a
// writer reconnect, and /metrics and /healthz agree.
func TestStatusLiveSync(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Seed: 3})
	addr := freeStatusAddr(t)
	base := "http://" + addr
	p := startFerry(t, "sync", "--source", src.URL(), "--target", dst.URL(), "--job", "live",
		"-c", jobFile(t, fmt.Sprintf("status_addr = %q", addr)))

	var j status.Job
	redistest.WaitFor(t, time.Minute, func() bool {
		var ok bool
		j, ok = statusJob(t, base, "live")
		return ok && j.Phase == "streaming"
	}, "job live streaming in /status")
	if j.Mode != "sync" || len(j.Shards) != 1 || len(j.Writers) != 1 || j.StartedAt.IsZero() {
		t.Fatalf("/status/live: %+v", j)
	}
	// The source's key count at the start: a diskless snapshot's estimate.
	if want := src.Do(t, "DBSIZE").(int64); j.Shards[0].SourceKeys != want {
		t.Errorf("source_keys %d, want the source's %d keys", j.Shards[0].SourceKeys, want)
	}

	ctx := context.Background()
	for i := 0; i < 300; i++ {
		sc.Incr(ctx, "counter")
		sc.Set(ctx, fmt.Sprint("live:", i), i, 0)
	}
	redistest.WaitFor(t, time.Minute, func() bool {
		j, _ = statusJob(t, base, "live")
		if len(j.Shards) != 1 {
			return false
		}
		sh := j.Shards[0]
		// The last write is SET live:299; the count follows the
		// target's acknowledgement.
		return sh.LagBytes == 0 && sh.ReceivedOffset > 0 && sh.AppliedOffset == sh.ReceivedOffset &&
			dst.Do(t, "GET", "counter") == "300" && dst.Do(t, "EXISTS", "live:299") == int64(1) && j.CommandsApplied >= 600
	}, "lag_bytes 0 and applied_offset = received_offset after the writes")
	sh, w := j.Shards[0], j.Writers[0]
	if sh.Name != "ferry-reader-0" || sh.ReplID == "" || sh.FullSyncs != 1 || j.KeysWritten == 0 || j.CommandsApplied < 600 {
		t.Errorf("/status/live shard or counters: %+v, keys %d, commands %d", sh, j.KeysWritten, j.CommandsApplied)
	}
	if w.Name != "ferry-writer-0" || !w.Connected || w.AppliedOffset != sh.AppliedOffset || w.AppliedState != "live" || w.Ops == 0 {
		t.Errorf("/status/live writer: %+v (shard applied %d)", w, sh.AppliedOffset)
	}

	// A killed target connection: the writer reconnects, and says so.
	before := w.Reconnects
	if n := dst.KillClients(t, "ferry-writer-"); n < 1 {
		t.Fatalf("no ferry-writer-* connection on the target to kill")
	}
	sc.Set(ctx, "after-kill", "1", 0)
	redistest.WaitFor(t, time.Minute, func() bool {
		j, _ = statusJob(t, base, "live")
		return len(j.Writers) == 1 && j.Writers[0].Reconnects > before && j.Writers[0].Connected &&
			len(j.Shards) == 1 && j.Shards[0].LagBytes == 0 && dst.Do(t, "EXISTS", "after-kill").(int64) == 1
	}, "writers[0].reconnects above %d after CLIENT KILL, and the write after it applied", before)

	// /status lists the one job; /healthz is ok.
	if jobs := statusJobs(t, base); len(jobs) != 1 || jobs[0].Name != "live" {
		t.Errorf("/status: %+v", jobs)
	}
	if code, body, err := httpGet(base + "/healthz"); err != nil || code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q %v", code, body, err)
	}

	mfs := scrape(t, base)
	eq := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	ge := func(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }
	job, shard, wr := "ferry_job=live", "shard=ferry-reader-0", "writer=ferry-writer-0"
	wantMetric(t, mfs, eq(1), "1", "ferry_up", job)
	wantMetric(t, mfs, eq(1), "1", "ferry_job_info", job, "mode=sync")
	wantMetric(t, mfs, eq(1), "1", "ferry_phase", job, "phase=streaming")
	wantMetric(t, mfs, eq(0), "0", "ferry_phase", job, "phase=rdb")
	wantMetric(t, mfs, eq(0), "0", "ferry_lag_bytes", job, shard)
	wantMetric(t, mfs, ge(1), ">= 1", "ferry_reconnects_total", job, "conn=writer", wr)
	wantMetric(t, mfs, ge(float64(j.KeysWritten)), fmt.Sprint(">= ", j.KeysWritten), "ferry_keys_written_total", job)
	wantMetric(t, mfs, ge(600), ">= 600", "ferry_commands_applied_total", job)
	wantMetric(t, mfs, eq(1), "1", "ferry_writer_connected", job, wr)
	wantMetric(t, mfs, ge(1), "> 0", "ferry_writer_ops_total", job, wr)
	wantMetric(t, mfs, eq(1), "1", "ferry_full_syncs_total", job, shard)
	recv, _ := metric(mfs, "ferry_source_received_offset_bytes", job, shard)
	appl, _ := metric(mfs, "ferry_source_applied_offset_bytes", job, shard)
	if recv <= 0 || recv != appl {
		t.Errorf("/metrics: received offset %v, applied offset %v: want equal and > 0", recv, appl)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p.wait(t, time.Minute)
	if code != exitOK {
		t.Fatalf("exit %d after SIGTERM\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if !strings.Contains(errs, base+"/status") {
		t.Errorf("the log does not give the status URL %s/status:\n%s", base, errs)
	}
	// The server stopped with the command.
	if _, _, err := httpGet(base + "/status"); err == nil {
		t.Errorf("the status server still answers after ferry exited")
	}
}

// TestStatusBusyDefaultAddr: when the default status address is taken
// (another ferry on the host), ferry warns and runs without a status
// server. status_addr set to the default's value counts as the default.
func TestStatusBusyDefaultAddr(t *testing.T) {
	def := conf.Default().StatusAddr
	ln, err := net.Listen("tcp", def)
	switch {
	case err == nil:
		defer ln.Close()
	case errors.Is(err, syscall.EADDRINUSE):
		// Busy already: just as good.
	default:
		t.Skipf("cannot bind %s: %v", def, err)
	}
	src, path := savedRDB(t)
	for _, c := range []struct{ name, file string }{
		{"unset", writeFile(t, t.TempDir(), "job.toml", fmt.Sprintf("data_dir = %q\nlog_format = \"json\"\n", t.TempDir()))},
		{"default-value", jobFile(t, fmt.Sprintf("status_addr = %q", def))},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := redistest.Start(t)
			code, out, errs := ferryRunWithin(t, 2*time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", c.file)
			if code != exitOK || !summaryRE.MatchString(out) {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			if !strings.Contains(errs, `"level":"warn"`) || !strings.Contains(errs, "status server disabled") || !strings.Contains(errs, def) {
				t.Errorf("no warning about the busy default status address:\n%s", errs)
			}
			assertImported(t, src, dst, "default", "")
		})
	}
}

// TestStatusImportSource: an RDB import shows as mode import with the file as its
// shard, and ends done.
func TestStatusImportSource(t *testing.T) {
	var size, parsed atomic.Int64
	js := newJobStatus(conf.Job{Name: "imp", RDB: "/data/dump.rdb"}, "")
	if j := js.source(); j.Mode != "import" || j.Phase != "" || j.Name != "imp" {
		t.Fatalf("before Observe: %+v", j)
	}
	js.observe(func() job.State {
		return job.State{Phase: "import", RDBSize: size.Load(), RDBParsed: parsed.Load(), Keys: 7}
	})
	size.Store(1000)
	parsed.Store(250)
	j := js.source()
	if j.Phase != "import" || len(j.Shards) != 1 || j.Shards[0].RDBBytesTotal != 1000 || j.Shards[0].RDBBytesApplied != 250 || j.KeysWritten != 7 {
		t.Fatalf("during the import: %+v", j)
	}
	if line := status.FormatProgress(j, 0); !strings.Contains(line, "25%") {
		t.Errorf("progress line %q: want 25%%", line)
	}
	js.finish(status.PhaseDone, nil)
	parsed.Store(1000)
	if j := js.source(); j.Phase != "done" || j.Shards[0].RDBBytesApplied != 250 || j.LastError != "" {
		t.Errorf("after finish the state must be frozen with phase done: %+v", j)
	}
	js.finish(status.PhaseFailed, errors.New("boom\nsecond line"))
	if j := js.source(); j.Phase != status.PhaseFailed || j.LastError != "boom second line" {
		t.Errorf("finish again: %+v", j)
	}
}

// TestProgressBar: on a terminal the bar is drawn from the job's state
// while the snapshot is applied, ended with a newline when the stream
// starts, and a log line wipes it first.
func TestProgressBar(t *testing.T) {
	var phase atomic.Value
	phase.Store("connecting")
	var parsed atomic.Int64
	js := newJobStatus(conf.Job{Name: "bar"}, "")
	js.observe(func() job.State {
		return job.State{
			Phase:     status.Phase(phase.Load().(string)),
			Shards:    []job.ShardState{{Name: "ferry-reader-0", Reader: reader.Stats{RDBSize: 1 << 20, RDBReceived: 1 << 20}}},
			Writers:   []job.WriterState{{Name: "ferry-writer-0", Stats: writer.Stats{Ops: 10}}},
			RDBParsed: parsed.Load(),
			Keys:      1234,
		}
	})
	var buf bytes.Buffer
	con := &console{w: &buf}
	b := newBarShow(js, con)
	// One look at the job per step, as the ticker of showProgress gives;
	// the pause lets the bar's redraw limit (ten a second) pass.
	step := func() {
		time.Sleep(150 * time.Millisecond)
		b.step()
	}
	step()
	phase.Store("rdb")
	parsed.Store(1 << 19)
	step()
	con.Write([]byte("a log line\n"))
	parsed.Store(1 << 20)
	step()
	phase.Store("streaming")
	step()
	// A second snapshot (full resync) whose bar a log line wipes at its
	// end: the bar is not drawn again after the log line.
	parsed.Store(1 << 18)
	phase.Store("rdb")
	step()
	con.Write([]byte("snapshot applied\n"))
	phase.Store("streaming")
	step()
	b.stop()
	all := buf.String()
	out, second, _ := strings.Cut(all, "\r[#####-") // the second snapshot's bar, at 25%
	if !strings.HasSuffix(second, "\r\x1b[Ksnapshot applied\n") {
		t.Errorf("a bar wiped by a log line was drawn again:\n%q", second)
	}
	for _, w := range []string{"\r[##########----------]  50% 512KiB/1.00MiB  1234 keys", "\r\x1b[Ka log line\n", "100% 1.00MiB/1.00MiB"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%q", w, out)
		}
	}
	if strings.Contains(out, "connecting") || strings.Contains(out, "streaming") {
		t.Errorf("a bar outside the snapshot:\n%q", out)
	}
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 2 {
		t.Errorf("want the log line and the ended bar, 2 newlines:\n%q", out)
	}
	if !regexp.MustCompile(`100% 1\.00MiB/1\.00MiB  1234 keys[^\r]*\n$`).MatchString(out) {
		t.Errorf("the bar does not end at 100%% with a newline:\n%q", out)
	}
}
