package status

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

const (
	barWidth    = 20
	redrawEvery = 100 * time.Millisecond
	rateWindow  = 10 * time.Second
)

// Progress draws the snapshot's progress as one redrawn line on a
// terminal. When the output is not a terminal it draws nothing: the job
// logs its own periodic line. Safe for concurrent use.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	now      func() time.Time
	line     string // last line rendered
	shown    int    // width of the line on screen
	open     bool   // a line is on screen, not yet ended by a newline
	lastDraw time.Time
	samples  []rateSample
}

type rateSample struct {
	at      time.Time
	applied int64
}

// NewProgress returns a renderer writing to w; tty says whether w is a
// terminal.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, now: time.Now}
}

// Update renders j's snapshot progress. Redraws are limited to ten a
// second; the latest state is drawn by Done in any case.
func (p *Progress) Update(j Job) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	_, _, applied := snapshotBytes(j)
	if j.Phase == PhaseScan {
		applied, _ = scanKeys(j) // a scan's rate is in keys
	}
	p.line = FormatProgress(j, p.rate(now, applied))
	if p.open && now.Sub(p.lastDraw) < redrawEvery {
		return
	}
	p.draw(now)
}

// Done draws the last state and ends the line. A later Update starts a new
// line (a full resync shows a new snapshot).
func (p *Progress) Done() {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line != "" {
		p.draw(p.now())
		io.WriteString(p.w, "\n")
	}
	p.open, p.shown, p.line, p.samples = false, 0, "", nil
}

func (p *Progress) draw(now time.Time) {
	n := utf8.RuneCountInString(p.line)
	pad := ""
	if p.shown > n {
		pad = strings.Repeat(" ", p.shown-n) // wipe the rest of a longer line
	}
	io.WriteString(p.w, "\r"+p.line+pad)
	p.shown, p.open, p.lastDraw = n, true, now
}

// rate is the applied bytes per second over the last rateWindow; 0 until
// it can be told.
func (p *Progress) rate(now time.Time, applied int64) float64 {
	if n := len(p.samples); n > 0 && applied < p.samples[n-1].applied {
		p.samples = p.samples[:0] // a new snapshot started over
	}
	if n := len(p.samples); n == 0 || now.Sub(p.samples[n-1].at) >= redrawEvery {
		p.samples = append(p.samples, rateSample{now, applied})
	}
	for len(p.samples) > 2 && now.Sub(p.samples[1].at) >= rateWindow {
		p.samples = p.samples[1:]
	}
	first := p.samples[0]
	dt := now.Sub(first.at).Seconds()
	if dt < 0.5 {
		return 0
	}
	return float64(applied-first.applied) / dt
}

// snapshotBytes sums the shards' RDB bytes. total is -1 unless every
// shard's size is known.
func snapshotBytes(j Job) (total, received, applied int64) {
	for _, s := range j.Shards {
		if s.RDBBytesTotal <= 0 || total < 0 {
			total = -1
		} else {
			total += s.RDBBytesTotal
		}
		received += max(s.RDBBytesReceived, 0)
		applied += max(s.RDBBytesApplied, 0)
	}
	if len(j.Shards) == 0 {
		total = -1
	}
	return total, received, applied
}

// ExpectedKeys sums the shards' source key counts, -1 unless every one
// is known.
func ExpectedKeys(j Job) int64 {
	var n int64
	for _, s := range j.Shards {
		if s.SourceKeys <= 0 {
			return -1
		}
		n += s.SourceKeys
	}
	if n == 0 {
		return -1
	}
	return n
}

// FormatProgress renders one progress line for j's snapshot, given the
// rate at which its bytes are applied (bytes per second, 0 = unknown):
//
//	[#########-----      ]  45% 1.17GiB/2.60GiB  1.23M keys  52.3MiB/s  ETA 27s
//
// '#' is applied, '-' received and not yet applied. With an unknown total
// (a diskless transfer) the bar and ETA are estimated, marked "~", from
// the keys applied out of the source's key count when it began:
//
//	[#########           ] ~45% 1.17GiB  1.23M/2.70M keys  52.3MiB/s  ETA ~27s
//
// and without a key count there is no bar and no ETA:
//
//	1.17GiB applied, 1.40GiB received  1.23M keys  52.3MiB/s
//
// Before any snapshot byte arrives it is the phase ("waiting-bgsave...").
func FormatProgress(j Job, rate float64) string {
	if j.Phase == PhaseScan {
		return formatScan(j, rate)
	}
	total, recv, applied := snapshotBytes(j)
	if recv == 0 && applied == 0 && j.KeysWritten == 0 && j.Phase != "" && j.Phase != "rdb" {
		return string(j.Phase) + "..."
	}
	var b strings.Builder
	if total > 0 {
		fa := min(float64(applied)/float64(total), 1)
		fr := max(min(float64(recv)/float64(total), 1), fa)
		na := int(fa * barWidth)
		nr := int(fr*barWidth) - na
		b.WriteString("[" + strings.Repeat("#", na) + strings.Repeat("-", nr) + strings.Repeat(" ", barWidth-na-nr) + "]")
		fmt.Fprintf(&b, " %3d%% %s/%s", int(fa*100), Bytes(applied), Bytes(total))
	} else if exp := ExpectedKeys(j); exp > 0 && j.KeysWritten > 0 {
		f := min(float64(j.KeysWritten)/float64(exp), 1)
		n := int(f * barWidth)
		b.WriteString("[" + strings.Repeat("#", n) + strings.Repeat(" ", barWidth-n) + "]")
		fmt.Fprintf(&b, " ~%d%% %s  %s/%s keys", int(f*100), Bytes(applied), countHuman(j.KeysWritten), countHuman(exp))
		if rate > 0 {
			fmt.Fprintf(&b, "  %s/s", Bytes(int64(rate)))
			if f < 1 {
				b.WriteString("  ETA ~" + etaHuman(float64(applied)*(1/f-1)/rate))
			}
		}
		return b.String()
	} else {
		fmt.Fprintf(&b, "%s applied, %s received", Bytes(applied), Bytes(recv))
	}
	fmt.Fprintf(&b, "  %s keys", countHuman(j.KeysWritten))
	if rate > 0 {
		fmt.Fprintf(&b, "  %s/s", Bytes(int64(rate)))
	}
	if total > 0 && applied < total {
		if rate > 0 {
			b.WriteString("  ETA " + etaHuman(float64(total-applied)/rate))
		} else {
			b.WriteString("  ETA ?")
		}
	}
	return b.String()
}

// Bytes formats a byte count in binary units, named as such (the config's
// sizes say KB for 1000 and KiB for 1024; so does the output), with three
// significant digits: "512B", "1.50KiB", "12.3MiB", "117MiB", "0.98GiB";
// "?" when negative.
func Bytes(n int64) string {
	if n < 0 {
		return "?"
	}
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	unit := ""
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		unit = u
		if v < 999.5 {
			break
		}
	}
	return sigDigits(v) + unit
}

// countHuman formats a count: exact below 10000, then "12.3k", "1.23M",
// "4.56G".
func countHuman(n int64) string {
	if n < 10000 {
		return fmt.Sprint(n)
	}
	v := float64(n)
	unit := ""
	for _, u := range []string{"k", "M", "G"} {
		v /= 1000
		unit = u
		if v < 999.5 {
			break
		}
	}
	return sigDigits(v) + unit
}

// sigDigits formats v (below 1000, or the largest unit's count) with
// three significant digits.
func sigDigits(v float64) string {
	switch {
	case v < 9.995:
		return fmt.Sprintf("%.2f", v)
	case v < 99.95:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// etaHuman formats a remaining time in seconds: "27s", "4m05s", "1h02m".
func etaHuman(sec float64) string {
	if !(sec < 100*3600) { // also NaN
		return ">99h"
	}
	s := int64(sec + 0.5)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
}

// scanKeys sums the keys the shards' scan passes read, and the keys their
// sources held when the passes began (-1 unless every one is known).
func scanKeys(j Job) (done, total int64) {
	for _, s := range j.Shards {
		done += s.ScanKeys
		if s.ScanKeysTotal <= 0 || total < 0 {
			total = -1
		} else {
			total += s.ScanKeysTotal
		}
	}
	if len(j.Shards) == 0 {
		total = -1
	}
	return done, total
}

// formatScan renders a scan reader's pass, given its rate in keys per
// second: keys read out of the source's DBSIZE at the start of the pass.
//
//	[#########           ]  45% 1.23M/2.70M keys  52.3k keys/s  ETA 28s
func formatScan(j Job, rate float64) string {
	done, total := scanKeys(j)
	var b strings.Builder
	if total > 0 {
		f := min(float64(done)/float64(total), 1)
		n := int(f * barWidth)
		b.WriteString("[" + strings.Repeat("#", n) + strings.Repeat(" ", barWidth-n) + "]")
		fmt.Fprintf(&b, " %3d%% %s/%s keys", int(f*100), countHuman(done), countHuman(total))
	} else {
		fmt.Fprintf(&b, "scan: %s keys", countHuman(done))
	}
	if rate > 0 {
		fmt.Fprintf(&b, "  %s keys/s", countHuman(int64(rate)))
		if total > done {
			b.WriteString("  ETA " + etaHuman(float64(total-done)/rate))
		}
	}
	return b.String()
}
