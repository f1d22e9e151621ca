package job

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/status"
)

// lagClock remembers when the reader received each offset, so that the lag
// can be told in seconds: how long the oldest byte not yet applied on the
// target has been waiting in ferry.
type lagClock struct {
	mu      sync.Mutex
	samples []lagSample
}

type lagSample struct {
	at     time.Time
	offset int64
}

// observe records that offset had been received by now.
func (l *lagClock) observe(offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.samples); n > 0 && l.samples[n-1].offset == offset {
		return
	}
	l.samples = append(l.samples, lagSample{time.Now(), offset})
	if len(l.samples) > 20000 {
		l.samples = append(l.samples[:0], l.samples[10000:]...)
	}
}

// seconds is how long the first unapplied byte has been waiting.
func (l *lagClock) seconds(applied int64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for i < len(l.samples) && l.samples[i].offset <= applied {
		i++
	}
	// Samples wholly applied are no longer needed.
	if i > 1 {
		l.samples = append(l.samples[:0], l.samples[i-1:]...)
		i = 1
	}
	if i >= len(l.samples) {
		return 0
	}
	return time.Since(l.samples[i].at).Seconds()
}

// progress logs a line every progress_interval and samples the lag clocks.
func (j *job) progress(ctx context.Context) error {
	every := j.c.ProgressInterval
	sample := time.NewTicker(100 * time.Millisecond)
	defer sample.Stop()
	var logC <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		logC = t.C
	}
	var lastScanned int64
	lastAt := time.Now()
	var rates status.Rates
	rates.Start(lastAt)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sample.C:
			for _, s := range j.parts() {
				if s.ps != nil {
					s.lag.observe(s.ps.Stats().Received)
				}
			}
		case <-logC:
			st := j.state()
			ops := int64(0)
			for _, w := range st.Writers {
				ops += w.Stats.Ops
			}
			now := time.Now()
			secs := now.Sub(lastAt).Seconds()
			rate, cmdRate := rates.Sample(now, ops, st.Commands, 0)
			// Scanned sources: keys read by the passes under way, out of
			// the keys their sources had when the passes began.
			var scanned, scanTotal int64
			for _, sh := range st.Shards {
				if sh.Reader.Mode == "scan" && sh.Reader.Phase == "scan" {
					scanned += sh.Reader.ScanKeys
					scanTotal += sh.Reader.ScanTotal
				}
			}
			scanRate := float64(scanned-lastScanned) / secs
			lastScanned, lastAt = scanned, now
			ev := j.log.Info().Str("phase", string(st.Phase)).Float64("ops_per_s", round1(rate)).
				Float64("commands_per_s", round1(cmdRate)).Int64("keys", st.Keys).Int64("commands", st.Commands)
			if st.Phase == status.PhaseRDB || st.Phase == status.PhaseImport {
				ev = ev.Str("rdb", fmt.Sprintf("%s/%s", status.Bytes(st.RDBParsed), status.Bytes(st.RDBSize)))
				if exp := status.ExpectedKeys(st.Status("", "")); st.RDBSize < 0 && exp > 0 {
					// Diskless: the size comes at the end; the source's
					// key count gives an estimate.
					ev = ev.Str("snapshot_estimate", fmt.Sprintf("~%.0f%% of %d keys", min(100, 100*float64(st.Keys)/float64(exp)), exp))
				}
			}
			if scanTotal > 0 {
				pct := min(100, 100*float64(scanned)/float64(scanTotal))
				ev = ev.Str("scan", fmt.Sprintf("%d/%d keys (%.0f%%)", scanned, scanTotal, pct))
				if scanRate > 0 && scanned < scanTotal {
					ev = ev.Float64("scan_eta_s", round1(float64(scanTotal-scanned)/scanRate))
				}
			}
			var lagBytes int64
			var lagS float64
			for _, sh := range st.Shards {
				lagBytes += sh.LagBytes
				lagS = max(lagS, sh.LagSeconds)
			}
			if len(st.Shards) > 0 {
				ev = ev.Int64("lag_bytes", lagBytes).Float64("lag_s", round1(lagS))
			}
			ev.Msg("progress")
		}
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

func sinceSeconds(t time.Time) float64 { return time.Since(t).Seconds() }
