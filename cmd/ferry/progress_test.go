package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// progressLines takes ferry's stderr (one writer: exec's copy) and hands
// each JSON line whose message is "progress" to lines as it arrives.
type progressLines struct {
	part  []byte
	lines chan map[string]any
}

func (p *progressLines) Write(b []byte) (int, error) {
	p.part = append(p.part, b...)
	for {
		i := bytes.IndexByte(p.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		var m map[string]any
		if json.Unmarshal(p.part[:i], &m) == nil && m["message"] == "progress" {
			select {
			case p.lines <- m:
			default: // the test stopped reading
			}
		}
		p.part = p.part[i+1:]
	}
}

// TestProgressLineRates: while a sync streams runs of pushes to one key,
// its progress line and /status tell the source's commands a second apart
// from the target's: fold sends a run as one LPUSH, so commands_per_s is
// many times ops_per_s, and commands counts what the source ran.
func TestProgressLineRates(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc := src.Client(t)
	dir, addr := t.TempDir(), freeStatusAddr(t)
	cfg := writeFile(t, dir, "job.toml", fmt.Sprintf("data_dir = %q\nprogress_interval = \"1s\"\nlog_format = \"json\"\nstatus_addr = %q\n",
		filepath.Join(dir, "data"), addr))

	progress := &progressLines{lines: make(chan map[string]any, 64)}
	p := startFerryTee(t, nil, progress, "sync", "--source", src.URL(), "--target", dst.URL(), "--job", "rates", "-c", cfg)
	ctx := context.Background()
	sc.Set(ctx, "ready", "1", 0)
	redistest.WaitFor(t, time.Minute, func() bool { return dst.Do(t, "EXISTS", "ready").(int64) == 1 }, "ferry streaming")

	// Pushes in pipelined bursts until a progress line has seen them.
	stop := make(chan struct{})
	loaded := make(chan int64, 1)
	go func() {
		var n int64
		defer func() { loaded <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			pipe := sc.Pipeline()
			for i := 0; i < 500; i++ {
				pipe.LPush(ctx, "runs", i)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return
			}
			n += 500
		}
	}()
	var line map[string]any
	deadline := time.After(time.Minute)
	for line == nil {
		select {
		case m := <-progress.lines:
			if c, _ := m["commands_per_s"].(float64); c > 0 && m["phase"] == "streaming" {
				line = m
			}
		case <-deadline:
			close(stop)
			t.Fatal("no progress line with commands_per_s > 0 within a minute")
		}
	}
	// The first request's rates are the averages since the job began,
	// over a second or more by now.
	js, ok := statusJob(t, "http://"+addr, "rates")
	close(stop)
	pushed := <-loaded
	if !ok {
		t.Fatal("no /status/rates while the sync runs")
	}
	if js.CommandsPerSecond <= 0 || js.OpsPerSecond*4 > js.CommandsPerSecond {
		t.Errorf("/status/rates: commands_per_second %.1f, ops_per_second %.1f: want the first many times the second", js.CommandsPerSecond, js.OpsPerSecond)
	}
	sc.Set(ctx, "last", "1", 0)
	redistest.WaitFor(t, time.Minute, func() bool { return dst.Do(t, "EXISTS", "last").(int64) == 1 }, "the last write on the target")

	cmdRate, _ := line["commands_per_s"].(float64)
	opsRate, ok := line["ops_per_s"].(float64)
	if !ok {
		t.Fatalf("progress line without ops_per_s: %v", line)
	}
	if opsRate*4 > cmdRate {
		t.Errorf("progress line: ops_per_s %.1f, commands_per_s %.1f: runs of pushes to one key should reach the target folded", opsRate, cmdRate)
	}
	if c, _ := line["commands"].(float64); c <= 0 {
		t.Errorf("progress line: commands %v, want the source's commands applied", line["commands"])
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p.wait(t, time.Minute)
	if code != exitOK {
		t.Fatalf("exit %d after SIGTERM\nstdout:\n%s", code, out)
	}
	checkClean(t, out, errs)
	if n := dst.Do(t, "LLEN", "runs").(int64); n != pushed {
		t.Errorf("target list holds %d pushes, the source ran %d", n, pushed)
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
}
