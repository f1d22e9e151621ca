package job

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"ferry/dial"
	"ferry/reader"
	"ferry/writer"
)

func newCtl(o dial.Options) *redis.Client {
	return redis.NewClient(redisOptions(o, "ferry-ctl-0", 0))
}

// masterOffset reads a master's master_repl_offset.
func masterOffset(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(infoField(info, "master_repl_offset"), 10, 64)
}

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

// progress logs a line every progress_interval and samples the lag clock.
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
	var lastOps int64
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sample.C:
			_, _, ps := j.parts()
			if ps != nil {
				j.lag.observe(ps.Stats().Received)
			}
		case <-logC:
			app, writers, ps := j.parts()
			ops := int64(0)
			for _, w := range writers {
				ops += w.Stats().Ops
			}
			rate := float64(ops-lastOps) / time.Since(lastAt).Seconds()
			lastOps, lastAt = ops, time.Now()
			ev := j.log.Info().Str("phase", j.Phase()).Float64("ops_per_s", round1(rate))
			if app != nil {
				ev = ev.Int64("keys", app.keys.Load()).Int64("commands", app.commands.Load())
			}
			if size := j.rdbSize.Load(); j.Phase() == "rdb" || j.Phase() == "import" {
				ev = ev.Str("rdb", fmt.Sprintf("%s/%s", bytesHuman(j.rdbOff.Load()), bytesHuman(size)))
			}
			if ps != nil {
				st := ps.Stats()
				applied := j.appliedOffset()
				if applied > 0 {
					ev = ev.Int64("lag_bytes", max(st.Received-applied, 0)).Float64("lag_s", round1(j.lag.seconds(applied)))
				}
			}
			ev.Msg("progress")
		}
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

func bytesHuman(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n >= 1<<30:
		return fmt.Sprintf("%.2fGB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// parts returns the current attempt's components.
func (j *job) parts() (*applier, []*writer.Writer, *reader.PSync) {
	j.mu.Lock()
	app, tgt, ps := j.app, j.tgt, j.psync
	j.mu.Unlock()
	var ws []*writer.Writer
	if tgt != nil {
		ws = tgt.writers()
	}
	return app, ws, ps
}
