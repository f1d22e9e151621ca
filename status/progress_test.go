package status

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func rdbJob(total, recv, applied, keys int64) Job {
	return Job{Phase: "rdb", KeysWritten: keys, Shards: []Shard{{RDBBytesTotal: total, RDBBytesReceived: recv, RDBBytesApplied: applied}}}
}

func TestFormatProgress(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name string
		j    Job
		rate float64
		want string
	}{
		{"start", rdbJob(2600*mb, 0, 0, 0), 0,
			"[                    ]   0% 0B/2.54GiB  0 keys  ETA ?"},
		{"half", rdbJob(200*mb, 120*mb, 100*mb, 1234567), 10 * mb,
			"[##########--        ]  50% 100MiB/200MiB  1.23M keys  10.0MiB/s  ETA 10s"},
		{"minutes", rdbJob(3<<30, 1<<30, 1<<30, 9999), 5 * mb,
			"[######              ]  33% 1.00GiB/3.00GiB  9999 keys  5.00MiB/s  ETA 6m50s"},
		{"hours", rdbJob(100<<30, 0, 0, 12345), 1 * mb,
			"[                    ]   0% 0B/100GiB  12.3k keys  1.00MiB/s  ETA 28h26m"},
		{"forever", rdbJob(1<<40, 0, 0, 0), 1,
			"[                    ]   0% 0B/1.00TiB  0 keys  1B/s  ETA >99h"},
		{"complete", rdbJob(1000, 1000, 1000, 3), 500,
			"[####################] 100% 1000B/1000B  3 keys  500B/s"},
		{"received beyond total", rdbJob(1000, 1500, 900, 3), 0,
			"[##################--]  90% 900B/1000B  3 keys  ETA ?"},
		{"diskless", rdbJob(-1, 1536, 1024, 7), 2048,
			"1.00KiB applied, 1.50KiB received  7 keys  2.00KiB/s"},
		{"diskless estimated", Job{Phase: "rdb", KeysWritten: 1230000, Shards: []Shard{{RDBBytesTotal: -1, RDBBytesReceived: 1300 * mb, RDBBytesApplied: 1200 * mb, SourceKeys: 2700000}}}, 50 * mb,
			"[#########           ] ~45% 1.17GiB  1.23M/2.70M keys  50.0MiB/s  ETA ~29s"},
		{"diskless estimate, one shard unknown", Job{Phase: "rdb", KeysWritten: 5, Shards: []Shard{{RDBBytesTotal: -1, SourceKeys: 10}, {RDBBytesTotal: -1, SourceKeys: -1}}}, 0,
			"0B applied, 0B received  5 keys"},
		{"scan", Job{Phase: PhaseScan, Shards: []Shard{{ScanKeys: 1000000, ScanKeysTotal: 2000000}, {ScanKeys: 230000, ScanKeysTotal: 700000}}}, 52300,
			"[#########           ]  45% 1.23M/2.70M keys  52.3k keys/s  ETA 28s"},
		{"scan, total unknown", Job{Phase: PhaseScan, Shards: []Shard{{ScanKeys: 12}}}, 0,
			"scan: 12 keys"},
		{"diskless no rate", rdbJob(-1, 0, 0, 0), 0,
			"0B applied, 0B received  0 keys"},
		{"waiting", Job{Phase: "waiting-bgsave", Shards: []Shard{{RDBBytesTotal: -1}}}, 0,
			"waiting-bgsave..."},
		{"no shards", Job{Phase: "rdb"}, 0,
			"0B applied, 0B received  0 keys"},
		{"two shards", Job{Phase: "rdb", KeysWritten: 2e9, Shards: []Shard{
			{RDBBytesTotal: 600, RDBBytesReceived: 600, RDBBytesApplied: 600},
			{RDBBytesTotal: 400, RDBBytesReceived: 100, RDBBytesApplied: 0}}}, 100,
			"[############--      ]  60% 600B/1000B  2.00G keys  100B/s  ETA 4s"},
		{"one shard unknown", Job{Phase: "rdb", Shards: []Shard{
			{RDBBytesTotal: 600, RDBBytesReceived: 600, RDBBytesApplied: 600},
			{RDBBytesTotal: -1, RDBBytesReceived: 100, RDBBytesApplied: 0}}}, 0,
			"600B applied, 700B received  0 keys"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := FormatProgress(c.j, c.rate); got != c.want {
				t.Errorf("\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

// The widest line still fits an 80-column terminal: a wrapped line breaks
// the \r redraw.
func TestFormatProgressWidth(t *testing.T) {
	j := rdbJob(1023<<30+1000<<20, 1000<<30, 1000<<30, 999_999)
	line := FormatProgress(j, 1000<<20)
	if n := utf8.RuneCountInString(line); n >= 80 {
		t.Errorf("%d columns: %q", n, line)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{-1: "?", 0: "0B", 1023: "1023B", 1024: "1.00KiB", 1536: "1.50KiB", 5 << 20: "5.00MiB", 117 << 20: "117MiB", 1000 << 20: "0.98GiB", 1023 << 20: "1.00GiB", 3 << 30: "3.00GiB", 2 << 40: "2.00TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressTTY(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{time.Unix(1000, 0)}
	p := NewProgress(&out, true)
	p.now = clk.now

	p.Update(Job{Phase: "waiting-bgsave"})
	if out.String() != "\rwaiting-bgsave..." {
		t.Fatalf("first draw: %q", out.String())
	}
	// Within 100 ms: remembered, not drawn.
	clk.t = clk.t.Add(50 * time.Millisecond)
	p.Update(rdbJob(1000, 0, 0, 0))
	if out.String() != "\rwaiting-bgsave..." {
		t.Fatalf("redrawn too soon: %q", out.String())
	}
	// 1 s later, 100 bytes applied: 100 B/s... measured from the first sample
	// of this snapshot.
	clk.t = clk.t.Add(time.Second)
	out.Reset()
	p.Update(rdbJob(1000, 200, 100, 1))
	want := "\r[##--                ]  10% 100B/1000B  1 keys  95B/s  ETA 9s"
	if out.String() != want {
		t.Fatalf("\n got %q\nwant %q", out.String(), want)
	}
	// A shorter line wipes the rest of the longer one.
	clk.t = clk.t.Add(time.Second)
	out.Reset()
	p.Update(Job{Phase: "connecting"})
	if got := out.String(); !strings.HasPrefix(got, "\rconnecting...   ") || utf8.RuneCountInString(got) != utf8.RuneCountInString(want) {
		t.Fatalf("shorter line: %q", got)
	}
	// Done draws the latest state even if it was throttled, and ends the line.
	clk.t = clk.t.Add(time.Millisecond)
	p.Update(rdbJob(1000, 1000, 1000, 5))
	out.Reset()
	p.Done()
	if got := out.String(); !strings.HasPrefix(got, "\r[####################] 100% 1000B/1000B  5 keys") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("Done: %q", got)
	}
	out.Reset()
	p.Done()
	if out.Len() != 0 {
		t.Errorf("second Done wrote %q", out.String())
	}
}

func TestProgressRate(t *testing.T) {
	clk := &fakeClock{time.Unix(0, 0)}
	p := NewProgress(&bytes.Buffer{}, true)
	p.now = clk.now
	// 1 MB/s for 30 s, then 4 MB/s: after 10 s at the new speed, the
	// window sees only the new speed.
	var applied int64
	for range 300 {
		clk.t = clk.t.Add(100 * time.Millisecond)
		applied += 100_000
		p.rate(clk.t, applied)
	}
	if r := p.rate(clk.t, applied); r < 0.99e6 || r > 1.01e6 {
		t.Errorf("rate = %.0f, want 1e6", r)
	}
	for range 110 {
		clk.t = clk.t.Add(100 * time.Millisecond)
		applied += 400_000
		p.rate(clk.t, applied)
	}
	if r := p.rate(clk.t, applied); r < 3.9e6 || r > 4.1e6 {
		t.Errorf("rate = %.0f, want 4e6", r)
	}
	if n := len(p.samples); n > 110 {
		t.Errorf("%d samples kept", n)
	}
	// A new snapshot (applied went back) starts the rate over.
	if r := p.rate(clk.t.Add(time.Second), 10); r != 0 {
		t.Errorf("rate after restart = %v, want 0 (unknown)", r)
	}
}

func TestProgressNotTTY(t *testing.T) {
	var out bytes.Buffer
	p := NewProgress(&out, false)
	p.Update(rdbJob(1000, 500, 400, 3))
	p.Done()
	if out.Len() != 0 {
		t.Errorf("wrote %q when not a terminal", out.String())
	}
}

func TestCountHuman(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 9999: "9999", 10000: "10.0k", 12345: "12.3k", 999_999: "1.00M", 1_234_567: "1.23M", 2e9: "2.00G", 5e12: "5000G"} {
		if got := countHuman(n); got != want {
			t.Errorf("countHuman(%d) = %q, want %q", n, got, want)
		}
	}
}
