package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
)

func sampleJob(name string) Job {
	return Job{
		Name:      "ignored: the registered name wins",
		Mode:      "sync",
		Phase:     "streaming",
		StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Shards: []Shard{{
			Name: "s0", Addr: "redis://admin:hunter2@10.0.0.1:6379", Phase: "streaming", ReplID: "8f1e",
			ReceivedOffset: 5000, AppliedOffset: 4000, LagBytes: 1000, LagSeconds: 0.25,
			RDBBytesTotal: -1, RDBBytesReceived: 300, RDBBytesApplied: 200,
			FullSyncs: 1, PartialSyncs: 2, Reconnects: 3,
			SpoolMemoryBytes: 64, SpoolDiskBytes: 128,
		}},
		Writers: []Writer{{
			Name: "w0", Addr: "10.0.0.2:6379", Connected: true,
			Reconnects: 4, Batches: 10, Ops: 100, Bytes: 4096, Skipped: 1, Pings: 7,
			InflightBytes: 512, QueuedBytes: 256, ConnAgeSeconds: 12.5, KeepaliveIntervalSeconds: 30,
			AppliedReplID: "8f1e", AppliedOffset: 4000, AppliedState: "live",
		}},
		KeysWritten: 42, KeysExpired: 3, KeysEmpty: 2, KeysSwept: 5, CommandsApplied: 77, CommandsPerSecond: 1250, OpsPerSecond: 12.5,
		LastError: "dial redis://:s3cret@10.0.0.1:6379: refused",
	}
}

// start runs a server on a free loopback port until the test ends.
func start(t *testing.T) (*Server, string) {
	t.Helper()
	s, err := New("127.0.0.1:0", true, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return s, "http://" + s.Addr()
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestStatusJSON(t *testing.T) {
	s, base := start(t)
	s.Register("b-job", func() Job { return sampleJob("b-job") })
	s.Register("a-job", func() Job { return Job{Mode: "migrate", Phase: "rdb"} })

	code, body, h := get(t, base+"/status")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status: %d %q", code, h.Get("Content-Type"))
	}
	var all struct{ Jobs []Job }
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Jobs) != 2 || all.Jobs[0].Name != "a-job" || all.Jobs[1].Name != "b-job" {
		t.Fatalf("jobs not sorted by registered name: %+v", all.Jobs)
	}
	if all.Jobs[0].Shards == nil || all.Jobs[0].Writers == nil || !strings.Contains(body, `"shards": []`) {
		t.Errorf("a job without shards should have empty lists, not null:\n%s", body)
	}
	got := all.Jobs[1]
	want := sampleJob("")
	want.Name = "b-job"
	want.Shards[0].Addr = "redis://admin:***@10.0.0.1:6379"
	want.LastError = "dial redis://:***@10.0.0.1:6379: refused"
	want.Dropped = map[string]int64{"skipped": 1}
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if !bytes.Equal(wb, gb) {
		t.Errorf("round trip:\n got %s\nwant %s", gb, wb)
	}
	if strings.Contains(body, "hunter2") || strings.Contains(body, "s3cret") {
		t.Errorf("password in /status:\n%s", body)
	}

	// The JSON names are an interface: pin them.
	var raw struct {
		Jobs []map[string]any `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	j := raw.Jobs[1]
	for _, k := range []string{"name", "mode", "phase", "started_at", "shards", "writers", "keys_written", "keys_expired", "keys_empty", "keys_swept", "commands_applied", "commands_per_second", "ops_per_second", "dropped", "last_error"} {
		if _, ok := j[k]; !ok {
			t.Errorf("job field %q missing", k)
		}
	}
	if len(j) != 15 {
		t.Errorf("job has %d fields, want 15: %v", len(j), j)
	}
	sh := j["shards"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "addr", "phase", "replid", "received_offset", "applied_offset", "lag_bytes", "lag_seconds", "rdb_bytes_total", "rdb_bytes_received", "rdb_bytes_applied", "full_syncs", "partial_syncs", "reconnects", "spool_memory_bytes", "spool_disk_bytes", "disconnected_seconds", "last_error"} {
		if _, ok := sh[k]; !ok {
			t.Errorf("shard field %q missing", k)
		}
	}
	wr := j["writers"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "addr", "connected", "disconnected_seconds", "reconnects", "batches", "ops", "bytes", "skipped", "pings", "inflight_bytes", "queued_bytes", "conn_age_seconds", "keepalive_interval_seconds", "applied_replid", "applied_offset", "applied_state", "last_error"} {
		if _, ok := wr[k]; !ok {
			t.Errorf("writer field %q missing", k)
		}
	}
	if j["started_at"] != "2026-01-02T03:04:05Z" {
		t.Errorf("started_at = %v", j["started_at"])
	}

	// One job.
	code, body, _ = get(t, base+"/status/b-job")
	var one Job
	if code != 200 || json.Unmarshal([]byte(body), &one) != nil || one.Name != "b-job" || one.KeysWritten != 42 {
		t.Errorf("GET /status/b-job: %d %s", code, body)
	}
	if code, body, _ = get(t, base+"/status/nope"); code != 404 || !strings.Contains(body, `no job \"nope\"`) {
		t.Errorf("GET /status/nope: %d %s", code, body)
	}

	// Unregister and replace.
	s.Unregister("a-job")
	s.Register("b-job", func() Job { return Job{Phase: "done"} })
	code, body, _ = get(t, base+"/status")
	if err := json.Unmarshal([]byte(body), &all); err != nil || code != 200 || len(all.Jobs) != 1 || all.Jobs[0].Phase != "done" {
		t.Errorf("after Unregister/Register: %d %s", code, body)
	}

	// Only GET (and HEAD).
	resp, err := http.Post(base+"/status", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status: %d", resp.StatusCode)
	}
}

func TestNoJobs(t *testing.T) {
	_, base := start(t)
	if code, body, _ := get(t, base+"/status"); code != 200 || !strings.Contains(body, `"jobs": []`) {
		t.Errorf("GET /status with no jobs: %d %s", code, body)
	}
	if code, body, _ := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz with no jobs: %d %q", code, body)
	}
	if code, _, _ := get(t, base+"/"); code != 200 {
		t.Errorf("GET /: %d", code)
	}
	if code, _, _ := get(t, base+"/nothing"); code != 404 {
		t.Errorf("GET /nothing: %d", code)
	}
}

func TestHealthz(t *testing.T) {
	s, base := start(t)
	var phase atomic.Pointer[Phase]
	p := PhaseStreaming
	phase.Store(&p)
	s.Register("a", func() Job { return Job{Phase: *phase.Load(), LastError: "x"} })
	s.Register("b", func() Job { return Job{Phase: "done"} })
	if code, body, _ := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthy: %d %q", code, body)
	}
	f := PhaseFailed
	phase.Store(&f)
	s.Register("c", func() Job {
		return Job{Phase: PhaseFailed, LastError: "AUTH redis://u:pw@h:1 failed\nWRONGPASS"}
	})
	code, body, _ := get(t, base+"/healthz")
	want := "job a: failed: x\njob c: failed: AUTH redis://u:***@h:1 failed WRONGPASS\n"
	if code != 503 || body != want {
		t.Errorf("failing: %d %q, want 503 %q", code, body, want)
	}
}

func parseMetrics(t *testing.T, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return mfs
}

// value finds the sample of family name whose labels include all of want.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	var found []float64
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, lp := range m.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.Counter.GetValue())
		case m.Gauge != nil:
			found = append(found, m.Gauge.GetValue())
		case m.Untyped != nil:
			found = append(found, m.Untyped.GetValue())
		}
	}
	if len(found) > 1 {
		t.Errorf("%s%v matches %d samples", name, want, len(found))
	}
	if len(found) == 0 {
		return 0, false
	}
	return found[0], true
}

func TestMetrics(t *testing.T) {
	s, base := start(t)
	s.Register("orders", func() Job { return sampleJob("") })
	s.Register("users", func() Job {
		return Job{Mode: "migrate", Phase: "failed", Shards: []Shard{
			{Name: "m1", RDBBytesTotal: 1000, RDBBytesReceived: 600, RDBBytesApplied: 500, Phase: "rdb"},
			{Name: "m1", RDBBytesTotal: 10, Phase: "exotic"}, // duplicate name
		}}
	})
	code, body, h := get(t, base+"/metrics")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", code, h.Get("Content-Type"))
	}
	if strings.Contains(body, "hunter2") || strings.Contains(body, "s3cret") {
		t.Errorf("password in /metrics")
	}
	mfs := parseMetrics(t, body)

	o := map[string]string{"ferry_job": "orders"}
	sh := map[string]string{"ferry_job": "orders", "shard": "s0"}
	wr := map[string]string{"ferry_job": "orders", "writer": "w0"}
	with := func(m map[string]string, k, v string) map[string]string {
		c := map[string]string{k: v}
		for a, b := range m {
			c[a] = b
		}
		return c
	}
	cases := []struct {
		name   string
		labels map[string]string
		want   float64
		typ    dto.MetricType
	}{
		{"ferry_up", o, 1, dto.MetricType_GAUGE},
		{"ferry_up", map[string]string{"ferry_job": "users"}, 0, dto.MetricType_GAUGE},
		{"ferry_job_info", with(o, "mode", "sync"), 1, dto.MetricType_GAUGE},
		{"ferry_phase", with(o, "phase", "streaming"), 1, dto.MetricType_GAUGE},
		{"ferry_phase", with(o, "phase", "rdb"), 0, dto.MetricType_GAUGE},
		{"ferry_phase", map[string]string{"ferry_job": "users", "phase": "failed"}, 1, dto.MetricType_GAUGE},
		{"ferry_job_start_time_seconds", o, float64(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Unix()), dto.MetricType_GAUGE},
		{"ferry_keys_written_total", o, 42, dto.MetricType_COUNTER},
		{"ferry_keys_expired_total", o, 3, dto.MetricType_COUNTER},
		{"ferry_keys_empty_total", o, 2, dto.MetricType_COUNTER},
		{"ferry_keys_swept_total", o, 5, dto.MetricType_COUNTER},
		{"ferry_commands_applied_total", o, 77, dto.MetricType_COUNTER},
		{"ferry_source_info", with(with(sh, "addr", "redis://admin:***@10.0.0.1:6379"), "replid", "8f1e"), 1, dto.MetricType_GAUGE},
		{"ferry_source_phase", with(sh, "phase", "streaming"), 1, dto.MetricType_GAUGE},
		{"ferry_source_received_offset_bytes", sh, 5000, dto.MetricType_GAUGE},
		{"ferry_source_applied_offset_bytes", sh, 4000, dto.MetricType_GAUGE},
		{"ferry_lag_bytes", sh, 1000, dto.MetricType_GAUGE},
		{"ferry_lag_seconds", sh, 0.25, dto.MetricType_GAUGE},
		{"ferry_rdb_bytes", with(sh, "kind", "received"), 300, dto.MetricType_GAUGE},
		{"ferry_rdb_bytes", with(sh, "kind", "applied"), 200, dto.MetricType_GAUGE},
		{"ferry_rdb_bytes", map[string]string{"ferry_job": "users", "shard": "m1", "kind": "total"}, 1000, dto.MetricType_GAUGE},
		{"ferry_rdb_bytes", map[string]string{"ferry_job": "users", "shard": "m1#2", "kind": "total"}, 10, dto.MetricType_GAUGE},
		{"ferry_source_phase", map[string]string{"ferry_job": "users", "shard": "m1#2", "phase": "exotic"}, 1, dto.MetricType_GAUGE},
		{"ferry_full_syncs_total", sh, 1, dto.MetricType_COUNTER},
		{"ferry_partial_syncs_total", sh, 2, dto.MetricType_COUNTER},
		{"ferry_reconnects_total", with(sh, "conn", "source"), 3, dto.MetricType_COUNTER},
		{"ferry_reconnects_total", with(wr, "conn", "writer"), 4, dto.MetricType_COUNTER},
		{"ferry_spool_bytes", with(sh, "where", "memory"), 64, dto.MetricType_GAUGE},
		{"ferry_spool_bytes", with(sh, "where", "disk"), 128, dto.MetricType_GAUGE},
		{"ferry_writer_info", with(wr, "addr", "10.0.0.2:6379"), 1, dto.MetricType_GAUGE},
		{"ferry_writer_connected", wr, 1, dto.MetricType_GAUGE},
		{"ferry_writer_batches_total", wr, 10, dto.MetricType_COUNTER},
		{"ferry_writer_ops_total", wr, 100, dto.MetricType_COUNTER},
		{"ferry_writer_bytes_total", wr, 4096, dto.MetricType_COUNTER},
		{"ferry_writer_skipped_total", wr, 1, dto.MetricType_COUNTER},
		{"ferry_writer_pings_total", wr, 7, dto.MetricType_COUNTER},
		{"ferry_writer_inflight_bytes", wr, 512, dto.MetricType_GAUGE},
		{"ferry_writer_queued_bytes", wr, 256, dto.MetricType_GAUGE},
		{"ferry_writer_conn_age_seconds", wr, 12.5, dto.MetricType_GAUGE},
		{"ferry_writer_keepalive_interval_seconds", wr, 30, dto.MetricType_GAUGE},
		{"ferry_writer_applied_offset_bytes", wr, 4000, dto.MetricType_GAUGE},
	}
	for _, c := range cases {
		v, ok := value(t, mfs, c.name, c.labels)
		if !ok {
			t.Errorf("%s%v: missing", c.name, c.labels)
			continue
		}
		if v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
		if typ := mfs[c.name].GetType(); typ != c.typ {
			t.Errorf("%s is %v, want %v", c.name, typ, c.typ)
		}
		if mfs[c.name].GetHelp() == "" {
			t.Errorf("%s has no help", c.name)
		}
	}
	// Unknown total: no sample rather than -1.
	if _, ok := value(t, mfs, "ferry_rdb_bytes", with(sh, "kind", "total")); ok {
		t.Error("ferry_rdb_bytes{kind=total} reported while unknown")
	}
	// Every known phase is reported for a job, one of them 1.
	ones := 0
	for _, p := range Phases {
		v, ok := value(t, mfs, "ferry_phase", with(o, "phase", string(p)))
		if !ok {
			t.Errorf("ferry_phase{phase=%q} missing", p)
		}
		ones += int(v)
	}
	if ones != 1 {
		t.Errorf("%d phases are 1", ones)
	}
	// The private registry has the Go and process collectors.
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	for name := range mfs {
		if !strings.HasPrefix(name, "ferry_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("unexpected family %s", name)
		}
	}

	// Metrics follow the Sources: no cache, no background goroutine.
	s.Unregister("users")
	_, body, _ = get(t, base+"/metrics")
	mfs = parseMetrics(t, body)
	if _, ok := value(t, mfs, "ferry_up", map[string]string{"ferry_job": "users"}); ok {
		t.Error("unregistered job still in /metrics")
	}
}

// A Source that panics costs its own snapshot, not the process.
func TestPanickingSource(t *testing.T) {
	s, base := start(t)
	s.Register("bad", func() Job { panic("boom") })
	s.Register("good", func() Job { return Job{Phase: "rdb"} })
	code, body, _ := get(t, base+"/status")
	if code != 200 || !strings.Contains(body, "boom") || !strings.Contains(body, `"phase": "rdb"`) {
		t.Errorf("GET /status: %d %s", code, body)
	}
	if code, body, _ = get(t, base+"/metrics"); code != 200 || !strings.Contains(body, `ferry_up{ferry_job="good"} 1`) {
		t.Errorf("GET /metrics: %d", code)
	}
}

func TestConcurrentScrapes(t *testing.T) {
	s, base := start(t)
	var n atomic.Int64
	src := func() Job {
		k := n.Add(1)
		j := sampleJob("")
		j.KeysWritten = k
		return j
	}
	for i := range 3 {
		s.Register(fmt.Sprintf("job%d", i), src)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Jobs come and go while clients scrape.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("extra%d", i%4)
			s.Register(name, src)
			s.Unregister(name)
		}
	}()
	var clients sync.WaitGroup
	for i := range 8 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for k := range 15 {
				path := []string{"/metrics", "/status", "/healthz", "/status/job1"}[(i+k)%4]
				resp, err := http.Get(base + path)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
				}
				if path == "/metrics" {
					parseMetrics(t, string(b))
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	wg.Wait()
}

func TestDefaultAddrBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()

	var logs bytes.Buffer
	s, err := New(busy, false, zerolog.New(&logs))
	if err != nil {
		t.Fatalf("default address busy: want a disabled server, got %v", err)
	}
	if s.Addr() != "" {
		t.Errorf("Addr() = %q, want \"\"", s.Addr())
	}
	var ev map[string]any
	if err := json.Unmarshal(logs.Bytes(), &ev); err != nil {
		t.Fatalf("want one warning, got %q", logs.String())
	}
	if ev["level"] != "warn" || !strings.Contains(fmt.Sprint(ev["error"]), "status_addr "+busy+": address already in use") {
		t.Errorf("warning: %s", logs.String())
	}
	// A disabled server accepts jobs and waits for its context.
	s.Register("a", func() Job { return Job{} })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Errorf("Run of a disabled server: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

func TestExplicitAddrBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	var logs bytes.Buffer
	_, err = New(busy, true, zerolog.New(&logs))
	if err == nil {
		t.Fatal("explicit address busy: want an error")
	}
	if want := "status_addr " + busy + ": address already in use"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("errors.Is(err, EADDRINUSE) = false")
	}
	if logs.Len() != 0 {
		t.Errorf("logged %q", logs.String())
	}
}

func TestDisabled(t *testing.T) {
	s, err := New("", true, zerolog.Nop())
	if err != nil || s.Addr() != "" {
		t.Fatalf("New(\"\"): %v %q", err, s.Addr())
	}
	s.Register("a", func() Job { return Job{} })
	s.Unregister("a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Error(err)
	}
}

func TestBadAddr(t *testing.T) {
	_, err := New("127.0.0.1:notaport", true, zerolog.Nop())
	if err == nil || !strings.HasPrefix(err.Error(), "status_addr 127.0.0.1:notaport: ") {
		t.Errorf("err = %v", err)
	}
}

// Run shuts down within the grace period even when a client holds a
// request open, and frees the address.
func TestGracefulShutdown(t *testing.T) {
	s, err := New("127.0.0.1:0", true, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	var once sync.Once
	s.Register("slow", func() Job {
		once.Do(func() { close(entered) })
		<-release
		return Job{}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	go http.Get("http://" + addr + "/status") //nolint:errcheck // cut by the shutdown
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("request did not reach the source")
	}
	// An idle keep-alive connection must not hold the shutdown either.
	if code, _, _ := get(t, "http://"+addr+"/"); code != 200 {
		t.Errorf("GET /: %d", code)
	}
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(shutdownGrace + 3*time.Second):
		t.Fatal("Run did not return")
	}
	if d := time.Since(t0); d > shutdownGrace+time.Second {
		t.Errorf("shutdown took %v", d)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("address not freed: %v", err)
	}
	ln.Close()
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run: want an error")
	}
}

// Close frees the address of a server that never ran.
func TestCloseWithoutRun(t *testing.T) {
	s, err := New("127.0.0.1:0", true, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("address not freed: %v", err)
	}
	ln.Close()
	if err := s.Run(context.Background()); err != nil {
		t.Errorf("Run after Close: %v", err)
	}
}

// TestReadyz: /livez is always ok; /readyz and ferry_up follow readiness —
// a failed job, a connection down longer than UnreadyAfter, or a job that
// has been starting again that long makes the job unready, and the body
// says which part and why.
func TestReadyz(t *testing.T) {
	s, base := start(t)
	var down atomic.Int64 // writer's seconds down
	s.Register("a", func() Job {
		return Job{Phase: "streaming",
			Shards: []Shard{{Name: "s0", Addr: "10.0.0.1:6379"}},
			Writers: []Writer{{Name: "ferry-writer-0", Addr: "10.0.0.2:6379", Connected: down.Load() == 0,
				DisconnectedSeconds: float64(down.Load()), LastError: "connect 10.0.0.2:6379: connection refused"}}}
	})
	up := func() float64 {
		_, body, _ := get(t, base+"/metrics")
		v, _ := value(t, parseMetrics(t, body), "ferry_up", map[string]string{"ferry_job": "a"})
		return v
	}
	if code, body, _ := get(t, base+"/readyz"); code != 200 || body != "ok\n" || up() != 1 {
		t.Errorf("ready: %d %q up=%v", code, body, up())
	}
	down.Store(3) // a routine reconnect
	if code, _, _ := get(t, base+"/readyz"); code != 200 || up() != 1 {
		t.Errorf("down 3 s: /readyz %d, ferry_up %v; want ready", code, up())
	}
	down.Store(12)
	code, body, _ := get(t, base+"/readyz")
	want := "job a: writer ferry-writer-0 (10.0.0.2:6379) disconnected for 12 s: connect 10.0.0.2:6379: connection refused\n"
	if code != 503 || body != want || up() != 0 {
		t.Errorf("down 12 s: %d %q up=%v, want 503 %q up=0", code, body, up(), want)
	}
	_, mbody, _ := get(t, base+"/metrics")
	if v, ok := value(t, parseMetrics(t, mbody), "ferry_writer_disconnected_seconds", map[string]string{"ferry_job": "a"}); !ok || v != 12 {
		t.Errorf("ferry_writer_disconnected_seconds = %v, %v", v, ok)
	}
	if code, body, _ := get(t, base+"/livez"); code != 200 || body != "ok\n" {
		t.Errorf("/livez: %d %q", code, body)
	}
	s.Register("b", func() Job { return Job{Phase: PhaseFailed, LastError: "target x: refused"} })
	if code, body, _ := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "job b: failed: target x: refused") {
		t.Errorf("failed job: %d %q", code, body)
	}
	s.Register("c", func() Job {
		return Job{Phase: PhaseConnecting, RestartingSeconds: 15, LastError: "target connect 10.0.0.3:6379: connection refused"}
	})
	if _, body, _ := get(t, base+"/readyz"); !strings.Contains(body, "job c: restarting: target or source not reachable for 15 s: target connect 10.0.0.3:6379: connection refused\n") {
		t.Errorf("restarting job: %q", body)
	}
}
