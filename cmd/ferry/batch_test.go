package main

// ferry run: batch files against real redis-server processes.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// batchFile writes a batch file: top (top-level keys), a [defaults] table
// that keeps ferry's files in a temp dir, logs JSON and serves status on
// statusAddr ("off" for none), then the jobs.
func batchFile(t *testing.T, top, statusAddr string, jobs ...string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(top + "\n")
	fmt.Fprintf(&b, "[defaults]\ndata_dir = %q\nprogress_interval = \"0s\"\nlog_format = \"json\"\nstatus_addr = %q\n\n",
		filepath.Join(dir, "data"), statusAddr)
	for _, j := range jobs {
		b.WriteString("[[job]]\n" + j + "\n\n")
	}
	return writeFile(t, dir, "jobs.toml", b.String())
}

func migrateJob(name string, src, dst *redistest.Server) string {
	return fmt.Sprintf("name = %q\nmode = \"migrate\"\nsource = %q\ntarget = %q", name, src.URL(), dst.URL())
}

// summaryRow finds the row of job name in the summary table and returns
// its columns: job, mode, result, keys, seconds, lag (the result may hold
// spaces); the last column, dropped, must be a count or "-".
func summaryRow(t *testing.T, out, name string) (mode, result, keys, secs, lag string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+(\S+)\s+(.+?)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+|-)\s*$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary row for job %s:\n%s", name, out)
	}
	return m[1], m[2], m[3], m[4], m[5]
}

// logEvents are the JSON log lines of stderr with the given message.
func logEvents(t *testing.T, stderr string, msgs ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		for _, m := range msgs {
			if ev["message"] == m {
				out = append(out, ev)
			}
		}
	}
	return out
}

// TestRunBatch: two migrations between real servers complete while a third,
// whose target is unreachable, fails; the summary says which; exit 1.
func TestRunBatch(t *testing.T) {
	t.Parallel()
	src1, dst1, src2, dst2 := redistest.Start(t), redistest.Start(t), redistest.Start(t), redistest.Start(t)
	redistest.FillAllTypes(t, src1.Client(t), redistest.FillOptions{Keys: 300, DBs: []int{0, 1}, TTLPct: 20, Seed: 1})
	redistest.FillAllTypes(t, src2.Client(t), redistest.FillOptions{Keys: 200, Seed: 2})
	down := fmt.Sprintf("redis://127.0.0.1:%d", redistest.FreePort(t))
	path := batchFile(t, "max_parallel = 3", "off",
		migrateJob("alpha", src1, dst1),
		migrateJob("beta", src2, dst2),
		fmt.Sprintf("name = \"broken\"\nmode = \"migrate\"\nsource = %q\ntarget = %q", src1.URL(), down))

	code, out, errs := ferryRunWithin(t, 2*time.Minute, "run", "-c", path)
	last := checkFailure(t, code, out, errs, exitFailure, "1 of 3 jobs", "broken (failed)")
	if strings.Contains(last, "alpha") || strings.Contains(last, "beta") {
		t.Errorf("the failure line names jobs that succeeded: %q", last)
	}
	if !strings.HasPrefix(out, "JOB ") || !strings.Contains(out, "MODE") || !strings.HasSuffix(out, "2 of 3 jobs ok\n") {
		t.Errorf("summary table:\n%s", out)
	}
	for name, want := range map[string]int64{"alpha": keyCount(t, src1), "beta": keyCount(t, src2)} {
		mode, result, keys, secs, lag := summaryRow(t, out, name)
		if mode != "migrate" || result != "ok" || keys != fmt.Sprint(want) || lag != "0" || !regexp.MustCompile(`^\d+\.\d$`).MatchString(secs) {
			t.Errorf("%s: row %q %q %q %q %q; want migrate ok %d keys, lag 0\n%s", name, mode, result, keys, secs, lag, want, out)
		}
	}
	_, result, _, _, _ := summaryRow(t, out, "broken")
	if !strings.HasPrefix(result, "failed: ") || !strings.Contains(result, "connection refused") {
		t.Errorf("broken: result %q; want failed: ... connection refused", result)
	}
	redistest.AssertSameData(t, []string{src1.Addr}, []string{dst1.Addr}, false, false)
	redistest.AssertSameData(t, []string{src2.Addr}, []string{dst2.Addr}, false, false)

	// Every log line of a job carries its name.
	for _, ev := range logEvents(t, errs, "job started", "job finished", "job failed") {
		if ev["job"] == nil {
			t.Errorf("log line without a job field: %v", ev)
		}
	}
	if n := len(logEvents(t, errs, "job failed")); n != 1 {
		t.Errorf("%d \"job failed\" log lines, want 1", n)
	}
}

// TestRunBatchFailFast: with fail_fast the first failure stops a running
// sync (which would otherwise run until a signal) and a job still queued
// never starts.
func TestRunBatchFailFast(t *testing.T) {
	t.Parallel()
	src, dst, src2, dst2 := redistest.Start(t), redistest.Start(t), redistest.Start(t), redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 100, Seed: 4})
	down := fmt.Sprintf("redis://127.0.0.1:%d", redistest.FreePort(t))
	path := batchFile(t, "max_parallel = 2\nfail_fast = true", "off",
		fmt.Sprintf("name = \"forever\"\nmode = \"sync\"\nsource = %q\ntarget = %q", src.URL(), dst.URL()),
		fmt.Sprintf("name = \"broken\"\nmode = \"migrate\"\nsource = %q\ntarget = %q", src.URL(), down),
		migrateJob("queued", src2, dst2))

	start := time.Now()
	code, out, errs := ferryRunWithin(t, time.Minute, "run", "-c", path)
	checkFailure(t, code, out, errs, exitFailure, "3 jobs", "broken (failed)", "forever (cancelled)", "queued (cancelled)")
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("fail_fast took %v to stop the run", d)
	}
	_, result, _, _, _ := summaryRow(t, out, "broken")
	if !strings.HasPrefix(result, "failed: ") {
		t.Errorf("broken: %q", result)
	}
	_, result, _, _, _ = summaryRow(t, out, "forever")
	if result != "cancelled: stopped: job broken failed (fail_fast)" {
		t.Errorf("forever: %q", result)
	}
	_, result, keys, secs, lag := summaryRow(t, out, "queued")
	if result != "cancelled: not started: job broken failed (fail_fast)" || keys != "-" || secs != "-" || lag != "-" {
		t.Errorf("queued: %q %q %q %q", result, keys, secs, lag)
	}
	if n := keyCount(t, dst2); n != 0 {
		t.Errorf("the queued job wrote %d keys", n)
	}
}

// TestRunBatchSequential: max_parallel = 1 runs the jobs one at a time, in
// file order.
func TestRunBatchSequential(t *testing.T) {
	t.Parallel()
	var jobs []string
	var pairs [][2]*redistest.Server
	for i := 0; i < 3; i++ {
		s, d := redistest.Start(t), redistest.Start(t)
		redistest.FillAllTypes(t, s.Client(t), redistest.FillOptions{Keys: 100, Seed: int64(10 + i)})
		jobs = append(jobs, migrateJob(fmt.Sprint("seq", i), s, d))
		pairs = append(pairs, [2]*redistest.Server{s, d})
	}
	path := batchFile(t, "max_parallel = 1", "off", jobs...)
	code, out, errs := ferryRunWithin(t, 2*time.Minute, "run", "-c", path)
	if code != exitOK || !strings.HasSuffix(out, "3 of 3 jobs ok\n") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	var order []string
	for _, ev := range logEvents(t, errs, "job started", "job finished") {
		order = append(order, fmt.Sprintf("%v %v", ev["message"], ev["job"]))
	}
	want := []string{"job started seq0", "job finished seq0", "job started seq1", "job finished seq1", "job started seq2", "job finished seq2"}
	if strings.Join(order, ", ") != strings.Join(want, ", ") {
		t.Errorf("with max_parallel = 1 the jobs overlap:\n got %v\nwant %v", order, want)
	}
	for _, p := range pairs {
		redistest.AssertSameData(t, []string{p[0].Addr}, []string{p[1].Addr}, false, false)
	}
}

// TestRunBatchVerify: verify jobs in a batch: equal is ok, different is a
// failure that says how many differences.
func TestRunBatchVerify(t *testing.T) {
	t.Parallel()
	a, b, c := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	for _, s := range []*redistest.Server{a, b, c} {
		redistest.FillAllTypes(t, s.Client(t), redistest.FillOptions{Keys: 100, Seed: 7})
	}
	c.Do(t, "SET", "only-on-c", "x")
	path := batchFile(t, "", "off",
		fmt.Sprintf("name = \"same\"\nmode = \"verify\"\nsource = %q\ntarget = %q", a.URL(), b.URL()),
		fmt.Sprintf("name = \"differ\"\nmode = \"verify\"\nsource = %q\ntarget = %q", a.URL(), c.URL()))
	code, out, errs := ferryRunWithin(t, 2*time.Minute, "run", "-c", path)
	checkFailure(t, code, out, errs, exitFailure, "1 of 2 jobs", "differ (failed)")
	mode, result, keys, _, lag := summaryRow(t, out, "same")
	if mode != "verify" || result != "ok" || keys != fmt.Sprint(keyCount(t, a)) || lag != "-" {
		t.Errorf("same: %q %q %q %q\n%s", mode, result, keys, lag, out)
	}
	_, result, _, _, _ = summaryRow(t, out, "differ")
	if result != "failed: source and target differ: 1 difference (extra 1)" {
		t.Errorf("differ: %q", result)
	}
	if !strings.Contains(errs, "only-on-c") {
		t.Errorf("the log does not show the difference:\n%s", errs)
	}
}

// TestRunBatchStatusAndSignal: one status server shows every job of the
// batch; a sync job runs until SIGINT, which stops it gracefully, exit 0.
func TestRunBatchStatusAndSignal(t *testing.T) {
	t.Parallel()
	s1, d1, s2, d2, v1, v2 := redistest.Start(t), redistest.Start(t), redistest.Start(t), redistest.Start(t), redistest.Start(t), redistest.Start(t)
	redistest.FillAllTypes(t, s1.Client(t), redistest.FillOptions{Keys: 150, Seed: 21})
	redistest.FillAllTypes(t, s2.Client(t), redistest.FillOptions{Keys: 150, Seed: 22})
	for _, s := range []*redistest.Server{v1, v2} {
		redistest.FillAllTypes(t, s.Client(t), redistest.FillOptions{Keys: 50, Seed: 23})
	}
	addr := freeStatusAddr(t)
	base := "http://" + addr
	path := batchFile(t, "", addr,
		fmt.Sprintf("name = \"follow\"\nmode = \"sync\"\nsource = %q\ntarget = %q", s1.URL(), d1.URL()),
		migrateJob("move", s2, d2),
		fmt.Sprintf("name = \"check\"\nmode = \"verify\"\nsource = %q\ntarget = %q", v1.URL(), v2.URL()))
	p := startFerry(t, "run", "-c", path)

	phases := map[string]string{}
	redistest.WaitFor(t, time.Minute, func() bool {
		jobs := statusJobs(t, base)
		clear(phases)
		for _, j := range jobs {
			phases[j.Name] = j.Mode + "/" + string(j.Phase)
		}
		return len(jobs) == 3 && phases["follow"] == "sync/streaming" && phases["move"] == "migrate/done" && phases["check"] == "verify/done"
	}, "three jobs in /status: follow streaming, move and check done (last seen %v)", phases)
	if code, body, err := httpGet(base + "/healthz"); err != nil || code != 200 {
		t.Errorf("/healthz: %d %q %v", code, body, err)
	}
	mfs := scrape(t, base)
	for _, c := range [][2]string{{"follow", "sync"}, {"move", "migrate"}, {"check", "verify"}} {
		if v, ok := metric(mfs, "ferry_job_info", "ferry_job="+c[0], "mode="+c[1]); !ok || v != 1 {
			t.Errorf("/metrics: no ferry_job_info{ferry_job=%q,mode=%q}", c[0], c[1])
		}
	}

	s1.Client(t).Set(context.Background(), "late", "1", 0)
	redistest.WaitFor(t, time.Minute, func() bool { return d1.Do(t, "EXISTS", "late").(int64) == 1 }, "a live write applied by the sync job")
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p.wait(t, time.Minute)
	if code != exitOK || !strings.HasSuffix(out, "3 of 3 jobs ok\n") {
		t.Fatalf("exit %d after SIGINT\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checkClean(t, out, errs)
	for _, name := range []string{"follow", "move", "check"} {
		if _, result, _, _, _ := summaryRow(t, out, name); result != "ok" {
			t.Errorf("%s: %q", name, result)
		}
	}
	redistest.AssertSameData(t, []string{s1.Addr}, []string{d1.Addr}, false, false)
	redistest.AssertSameData(t, []string{s2.Addr}, []string{d2.Addr}, false, false)
	if !markerExists(t, d1, "follow") || markerExists(t, d2, "move") {
		t.Errorf("markers: the sync job must keep its marker, the migrate job remove its own")
	}
}

// TestConfigCheckBatch: config check takes a batch file and checks it as run
// does: each job printed as it will run, or exit 2 naming the job at fault.
func TestConfigCheckBatch(t *testing.T) {
	good := batchFile(t, "", "off",
		"name = \"alpha\"\nmode = \"migrate\"\nsource = \"redis://127.0.0.1:7000\"\ntarget = \"redis://:secret@127.0.0.1:7001\"",
		"name = \"check\"\nmode = \"verify\"\nsource = \"redis://127.0.0.1:7000\"\ntarget = \"redis://127.0.0.1:7001\"")
	code, out, errs := ferryRun("config", "check", "-c", good)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"# [[job]] alpha (mode migrate)\n", "# [[job]] check (mode verify)\n", `name = "alpha"`, `name = "check"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Errorf("output shows a password:\n%s", out)
	}

	bad := batchFile(t, "", "off",
		"name = \"alpha\"\nmode = \"migrate\"\nsource = \"redis://127.0.0.1:7000\"\ntarget = \"redis://127.0.0.1:7001\"\nrestore = \"sometimes\"")
	code, _, errs = ferryRun("config", "check", "-c", bad)
	if code != exitUsage || !strings.Contains(errs, "job[alpha].restore") {
		t.Errorf("bad batch file: exit %d, stderr %q; want %d naming job[alpha].restore", code, errs, exitUsage)
	}
	code, _, errs = ferryRun("config", "check", "-c", good, "--source", "redis://127.0.0.1:1")
	if code != exitUsage || !strings.Contains(errs, "a batch file takes no job flags") {
		t.Errorf("batch file with a job flag: exit %d, stderr %q", code, errs)
	}
}
