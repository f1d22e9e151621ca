package job

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// watchLog passes a job's log lines on to next (the test's log, or another
// watchLog) and closes found at the first line that holds needle.
type watchLog struct {
	next   io.Writer
	needle []byte
	once   sync.Once
	found  chan struct{}
}

func newWatchLog(next io.Writer, needle string) *watchLog {
	return &watchLog{next: next, needle: []byte(needle), found: make(chan struct{})}
}

func (l *watchLog) Write(p []byte) (int, error) {
	if bytes.Contains(p, l.needle) {
		l.once.Do(func() { close(l.found) })
	}
	return l.next.Write(p)
}

// TestSnapshotCutOffByOutputLimit: a source under writes drops ferry in the
// middle of every snapshot, because what it buffers for ferry meanwhile
// passes its client-output-buffer-limit. ferry's warning names that limit,
// it keeps trying, and once the operator raises the limit the target ends
// equal to the source.
func TestSnapshotCutOffByOutputLimit(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t, "--client-output-buffer-limit", "replica 16kb 16kb 0")
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 2000, Seed: 41})

	ctx, stopWrites := context.WithCancel(context.Background())
	written := make(chan struct{})
	go func() {
		defer close(written)
		val := strings.Repeat("v", 200)
		for i := 0; ctx.Err() == nil; i++ {
			p := sc.Pipeline()
			for k := range 100 {
				p.Set(context.Background(), "w:"+strconv.Itoa((i*100+k)%5000), val, 0)
			}
			if _, err := p.Exec(context.Background()); err != nil {
				t.Errorf("writes: %v", err)
				return
			}
		}
	}()

	logs := newWatchLog(zerolog.TestWriter{T: t}, "client-output-buffer-limit replica")
	log := zerolog.New(logs).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: log})
	select {
	case <-logs.found:
	case <-time.After(60 * time.Second):
		t.Fatal("no warning naming client-output-buffer-limit within 60 s")
	}
	if err := sc.ConfigSet(context.Background(), "client-output-buffer-limit", "replica 256mb 64mb 60").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // writes go on while the next snapshot is sent
	stopWrites()
	<-written
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 60 * time.Second})
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}
