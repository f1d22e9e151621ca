package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/verify"
)

// errDiffer is returned by cmdVerify when source and target differ: exit 1,
// with the counts on the stderr line.
type errDiffer struct{ r verify.Result }

func (e errDiffer) Error() string {
	var parts []string
	for _, k := range verify.Kinds {
		if n := e.r.Counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	n := e.r.Total()
	noun := "differences"
	if n == 1 {
		noun = "difference"
	}
	return fmt.Sprintf("source and target differ: %d %s (%s)", n, noun, strings.Join(parts, ", "))
}

func cmdVerify(args []string, stdout, stderr io.Writer) error {
	f := newJobFlags("verify", "Compare every key of the source with the target: existence, type, value (streams with\n"+
		"their consumer groups) and TTL. Keys that differ are compared again over a few rounds before\n"+
		"being reported, so that it can run while a sync is going on.\n"+
		"Exit 0 when equal, 1 when they differ (or on a runtime error), 2 on bad usage.", stderr)
	mode := f.fs.String("mode", string(verify.ModeFull), "full | sample | keys (existence, type and length only)")
	sample := f.fs.Int("sample", verify.DefaultSample, "with --mode sample: random keys compared per db")
	rounds := f.fs.Int("rounds", verify.DefaultRounds, "comparison rounds, the first included: differing keys are re-checked before being reported")
	roundDelay := f.fs.Duration("round-delay", verify.DefaultRoundDelay, "pause before each re-check round")
	ttlTol := f.fs.Duration("ttl-tolerance", verify.DefaultTTLTolerance, "how far the TTLs of a key may be apart")
	maxOps := f.fs.Int("max-ops", 0, "commands per second against each side (default: max_ops_per_second of the config; 0 = unlimited)")
	workers := f.fs.Int("workers", verify.DefaultWorkers, "batches of keys compared in parallel")
	batch := f.fs.Int("batch", verify.DefaultBatch, "keys per pipelined batch")
	maxDiffs := f.fs.Int("max-diffs", verify.DefaultMaxDiffs, "differences listed and re-checked; more are only counted")
	reportPath := f.fs.String("report", "", "write the differing keys as JSON to this file")

	jc, err := f.load(args, conf.ModeVerify)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })

	m := verify.Mode(strings.ToLower(strings.TrimSpace(*mode)))
	switch m {
	case verify.ModeFull, verify.ModeSample, verify.ModeKeys:
	default:
		return usageError{fmt.Errorf("--mode %q is not one of full, sample, keys", *mode)}
	}
	if set["sample"] && m != verify.ModeSample {
		return usageError{errors.New("--sample applies only to --mode sample")}
	}
	for _, c := range []struct {
		name string
		v    int
		min  int
	}{{"sample", *sample, 1}, {"rounds", *rounds, 1}, {"max-ops", *maxOps, 0}, {"workers", *workers, 1}, {"batch", *batch, 1}, {"max-diffs", *maxDiffs, 1}} {
		if c.v < c.min {
			return usageError{fmt.Errorf("--%s must be %d or more, not %d", c.name, c.min, c.v)}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"round-delay", *roundDelay}, {"ttl-tolerance", *ttlTol}} {
		if d.v < 0 {
			return usageError{fmt.Errorf("--%s must not be negative", d.name)}
		}
	}
	ops := jc.MaxOpsPerSecond
	if set["max-ops"] {
		ops = *maxOps
	}
	// In verify.Options zero means "default" and negative "none".
	neg := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	if *reportPath != "" {
		// Fail before a long comparison, not after it.
		if st, err := os.Stat(filepath.Dir(*reportPath)); err != nil || !st.IsDir() {
			return usageError{fmt.Errorf("--report %s: no such directory %s", *reportPath, filepath.Dir(*reportPath))}
		}
		if st, err := os.Lstat(*reportPath); err == nil && st.IsDir() {
			return usageError{fmt.Errorf("--report %s: is a directory", *reportPath)}
		}
	}

	log := newLogger(jc, stderr)
	redisLogger.Store(&log)
	f.logWarnings(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	res, err := runVerify(ctx, jc, verify.Options{
		Mode:         m,
		Sample:       *sample,
		Rounds:       *rounds,
		RoundDelay:   neg(*roundDelay),
		TTLTolerance: neg(*ttlTol),
		MaxOps:       ops,
		Workers:      *workers,
		Batch:        *batch,
		MaxDiffs:     *maxDiffs,
	}, log)
	if err != nil {
		return err
	}
	if err := res.WriteSummary(stdout); err != nil {
		return err
	}
	if *reportPath != "" {
		if err := writeVerifyReport(*reportPath, res); err != nil {
			return err
		}
	}
	if !res.Equal() {
		return errDiffer{res}
	}
	return nil
}

// runVerify compares jc's source and target with the comparison settings
// of o (Mode, Rounds…; zero values are verify's defaults); the endpoints, the
// db map, the progress interval and the log come from jc. It is used by
// ferry verify and by the verify jobs of ferry run.
func runVerify(ctx context.Context, jc conf.Job, o verify.Options, log zerolog.Logger) (verify.Result, error) {
	o.Source, o.Target, o.DBMap = jc.Source, jc.Target, jc.DBMap
	o.Progress, o.Log = jc.ProgressInterval, log
	res, err := verify.Run(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			return res, errors.New("verify interrupted")
		}
		return res, fmt.Errorf("verify: %w", err)
	}
	return res, nil
}

// writeVerifyReport writes the report readable by its owner only (it holds
// values of both sides) to a new file beside path, then renames it over
// path: a symlink or a file someone else prepared at path is replaced, never
// followed or written through.
func writeVerifyReport(path string, res verify.Result) error {
	fh, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	tmp := fh.Name()
	err = res.WriteJSON(fh)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
