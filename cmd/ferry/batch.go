package main

// ferry run -c jobs.toml: the jobs of a batch file, max_parallel at once,
// one status server for all of them, a summary table at the end.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/job"
	"github.com/ferry-dev/ferry/status"
	"github.com/ferry-dev/ferry/verify"
)

const runSummary = `Run the jobs of a batch file: [[job]] tables, each a full job (name, mode = migrate |
sync | verify, source, target and any job setting) over the shared [defaults].
max_parallel jobs run at once; with fail_fast = true the first failure stops the
others. migrate and verify jobs end by themselves, sync jobs run until SIGINT or
SIGTERM, which stops every job gracefully. Every job's log lines carry its name
(field "job"); the status server (status_addr in [defaults]) shows all jobs.
At the end a table on stdout gives each job's result.
Exit 0 when every job succeeded, 1 otherwise, 2 on a bad batch file.`

// batchResult is how one job of a batch run ended.
type batchResult struct {
	name, mode string
	outcome    string // ok | failed | cancelled
	reason     string // for failed and cancelled
	started    bool
	keys       int64
	elapsed    time.Duration
	lag        int64 // -1: not applicable
	dropped    int64 // writes the target does not hold (on_error = skip, on_unsupported = drop); -1: not applicable
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var path, level, format, cpu string
	fs.StringVar(&path, "c", "", "batch file (TOML): [defaults] and [[job]] tables")
	fs.StringVar(&path, "config", "", "batch file, same as -c")
	fs.StringVar(&level, "log-level", "", "debug | info | warn | error (overrides log_level of [defaults])")
	fs.StringVar(&format, "log-format", "", "auto | console | json (overrides log_format of [defaults])")
	fs.StringVar(&cpu, "cpu-scheduling", "", "auto | batch | normal (overrides cpu_scheduling of [defaults])")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: ferry run -c FILE [flags]\n\n%s\n\nFlags:\n", runSummary)
			printFlags(stdout, fs, false)
			return err
		}
		return usageError{fmt.Errorf("run: %v (see 'ferry run --help')", err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("run: unexpected argument %q (flags start with -, see 'ferry run --help')", fs.Arg(0))}
	}
	if _, err := applyEnv(fs, map[string]string{"config": "c"}, os.LookupEnv); err != nil {
		return err
	}
	if path == "" {
		return usageError{errors.New("run: no batch file given (usage: ferry run -c jobs.toml)")}
	}
	b, err := conf.LoadBatch(path)
	if err != nil {
		return usageError{err}
	}
	if level != "" {
		if b.LogLevel, err = flagValue("log-level", level, conf.LogLevels); err != nil {
			return err
		}
	}
	if format != "" {
		if b.LogFormat, err = flagValue("log-format", format, conf.LogFormats); err != nil {
			return err
		}
	}
	if cpu != "" {
		if b.CPU, err = flagValue("cpu-scheduling", cpu, conf.CPUSchedulingModes); err != nil {
			return err
		}
	}
	for _, bj := range b.Jobs {
		if bj.Mode == conf.ModeVerify {
			continue
		}
		if err := notBuilt(bj.Job, "job["+bj.Job.Name+"]."); err != nil {
			return err
		}
	}

	base, _ := baseLogger(b.LogLevel, b.LogFormat, stderr)
	redisLogger.Store(&base)
	srv, stopStatus, err := statusServer(b.StatusAddr, b.Pprof, base)
	if err != nil {
		return err
	}
	defer stopStatus()
	statuses := make([]*jobStatus, len(b.Jobs))
	for i, bj := range b.Jobs {
		statuses[i] = newJobStatus(bj.Job, status.PhaseQueued)
		srv.Register(bj.Job.Name, statuses[i].source)
	}

	var stopTimeout time.Duration
	for _, bj := range b.Jobs {
		stopTimeout = max(stopTimeout, bj.Job.StopTimeout)
	}
	ctx, stop := signalContext(stderr, stopTimeout)
	defer stop()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var (
		failMu    sync.Mutex
		firstFail string // the job whose failure stopped the others (fail_fast)
	)
	stoppedBy := func() string {
		failMu.Lock()
		defer failMu.Unlock()
		return firstFail
	}

	// The soft memory limit covers the max_parallel jobs with the largest
	// bounds: those that may run at once.
	byMemory := make([]conf.Job, 0, len(b.Jobs))
	for _, bj := range b.Jobs {
		if bj.Mode != conf.ModeVerify {
			byMemory = append(byMemory, bj.Job)
		}
	}
	slices.SortFunc(byMemory, func(x, y conf.Job) int { return cmp.Compare(jobMemory(y), jobMemory(x)) })
	setMemoryLimit(base, byMemory[:min(len(byMemory), b.MaxParallel)]...)
	sc := newScheduler(base, b.CPU)

	base.Info().Int("jobs", len(b.Jobs)).Int("max_parallel", b.MaxParallel).Bool("fail_fast", b.FailFast).Str("file", path).Msg("batch run")
	results := make([]batchResult, len(b.Jobs))
	var g errgroup.Group
	g.SetLimit(b.MaxParallel)
	for i, bj := range b.Jobs {
		js := statuses[i]
		g.Go(func() error {
			log := base.With().Str("job", bj.Job.Name).Logger()
			r := batchResult{name: bj.Job.Name, mode: js.mode, lag: -1, dropped: -1}
			if runCtx.Err() != nil {
				r.outcome, r.reason = "cancelled", "not started: "+cancelReason(stoppedBy())
				js.finish(status.PhaseCancelled, nil)
				results[i] = r
				return nil
			}
			r = runBatchJob(runCtx, bj, log, js, sc)
			if r.outcome == "failed" && runCtx.Err() == nil && b.FailFast {
				failMu.Lock()
				if firstFail == "" {
					firstFail = bj.Job.Name
					log.Error().Msg("fail_fast: stopping the other jobs")
					cancelRun()
				}
				failMu.Unlock()
			} else if r.outcome != "ok" || bj.Mode == conf.ModeSync {
				// Ended because the run was cancelled by fail_fast.
				if who := stoppedBy(); who != "" && who != bj.Job.Name {
					r.outcome, r.reason = "cancelled", "stopped: "+cancelReason(who)
					js.finish(status.PhaseCancelled, errors.New(r.reason))
				}
			}
			results[i] = r
			return nil
		})
	}
	g.Wait()

	writeBatchSummary(stdout, results)
	var bad []string
	for _, r := range results {
		if r.outcome != "ok" {
			bad = append(bad, fmt.Sprintf("%s (%s)", r.name, r.outcome))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d jobs did not succeed: %s", len(bad), len(results), strings.Join(bad, ", "))
	}
	return nil
}

func cancelReason(failed string) string {
	if failed == "" {
		return "interrupted"
	}
	return "job " + failed + " failed (fail_fast)"
}

// runBatchJob runs one job of a batch and keeps its status.
func runBatchJob(ctx context.Context, bj conf.BatchJob, log zerolog.Logger, js *jobStatus, sc scheduler) batchResult {
	jc := bj.Job
	r := batchResult{name: jc.Name, mode: js.mode, started: true, lag: -1, dropped: -1}
	start := time.Now()
	log.Info().Str("mode", js.mode).Msg("job started")
	var err error
	if bj.Mode == conf.ModeVerify {
		js.setPhase(status.PhaseVerifying)
		sc.procs.set(jc.Name, 1) // its reads of the source and the target, as a stream's
		defer sc.procs.set(jc.Name, 0)
		var res verify.Result
		res, err = runVerify(ctx, jc, verify.Options{MaxOps: jc.MaxOpsPerSecond}, log)
		r.keys = res.Compared
		if err == nil && !res.Equal() {
			for i, d := range res.Diffs {
				if i == 10 {
					log.Warn().Int("more", len(res.Diffs)-i).Msg("verify: more differences")
					break
				}
				log.Warn().Str("diff", d.String()).Msg("verify: difference")
			}
			err = errDiffer{res}
		}
	} else {
		var sum job.Summary
		var co *job.Cutover
		if jc.CutoverHook != "" && jc.Mode == conf.ModeMigrate {
			co = &job.Cutover{PauseMax: jc.CutoverPauseMax, Hook: jc.CutoverHook, HookEnv: jc.CutoverHookEnv, HookTimeout: jc.CutoverHookTimeout}
		}
		sum, err = runJob(ctx, jc, log, js, co, sc)
		r.keys = sum.Keys
		r.dropped = sum.Skipped + sum.FieldTTLs + sum.Functions + sum.Modules
		if !jc.Import() && (err == nil || sum.Applied.Offset > 0) {
			r.lag = sum.Lag
		}
	}
	r.elapsed = time.Since(start)
	if err != nil {
		r.outcome, r.reason = "failed", oneLine(err.Error())
		js.finish(status.PhaseFailed, err)
		log.Error().Err(err).Float64("elapsed_s", r.elapsed.Round(time.Millisecond).Seconds()).Msg("job failed")
		return r
	}
	r.outcome = "ok"
	js.finish(status.PhaseDone, nil)
	log.Info().Int64("keys", r.keys).Float64("elapsed_s", r.elapsed.Round(time.Millisecond).Seconds()).Msg("job finished")
	return r
}

// writeBatchSummary prints one row per job: job, mode, result, keys,
// seconds, lag (bytes received from the source and not applied at the
// end; "-" where there is no live source), dropped (writes the target does
// not hold: skipped under on_error = skip, field TTLs under on_unsupported =
// drop; "-" for verify).
func writeBatchSummary(w io.Writer, results []batchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tMODE\tRESULT\tKEYS\tSECONDS\tLAG\tDROPPED")
	ok := 0
	for _, r := range results {
		res := r.outcome
		if r.reason != "" {
			res += ": " + r.reason
		}
		keys, secs, lag, dropped := "-", "-", "-", "-"
		if r.started {
			keys, secs = fmt.Sprint(r.keys), fmt.Sprintf("%.1f", r.elapsed.Seconds())
		}
		if r.started && r.lag >= 0 {
			lag = fmt.Sprint(r.lag)
		}
		if r.started && r.dropped >= 0 {
			dropped = fmt.Sprint(r.dropped)
		}
		if r.outcome == "ok" {
			ok++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.mode, res, keys, secs, lag, dropped)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d of %d jobs ok\n", ok, len(results))
}

// flagValue checks a flag that overrides a [defaults] key against the values
// the key accepts (conf.Choose), so that both say the same.
func flagValue[T ~string](flag, v string, allowed []T) (T, error) {
	t, err := conf.Choose(v, allowed)
	if err != nil {
		return "", usageError{fmt.Errorf("--%s %w", flag, err)}
	}
	return t, nil
}
