// Package status shows what an operator watches: a snapshot type that jobs
// fill (Job), an HTTP server that serves the snapshots of any number of jobs
// as JSON (/status), Prometheus metrics (/metrics) and a health check
// (/healthz), and a terminal progress line for the initial snapshot.
//
// Jobs do not push anything: they register a Source, which the server calls
// on every request and scrape.
package status

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// Job is one job's state at one moment. JSON names are snake_case and
// stable; they are part of ferry's interface.
type Job struct {
	Name string `json:"name"`
	// Mode: sync | migrate | import | verify.
	Mode      string    `json:"mode"`
	Phase     Phase     `json:"phase"`
	StartedAt time.Time `json:"started_at"`
	// Shards has one entry per source shard (a standalone source has one).
	Shards []Shard `json:"shards"`
	// Writers has one entry per target master.
	Writers []Writer `json:"writers"`

	KeysWritten     int64 `json:"keys_written"`     // snapshot keys written
	KeysExpired     int64 `json:"keys_expired"`     // snapshot keys skipped: already expired
	KeysEmpty       int64 `json:"keys_empty"`       // snapshot keys skipped: empty collections (as Redis skips them)
	KeysSwept       int64 `json:"keys_swept"`       // stale keys deleted after a full resync
	CommandsApplied int64 `json:"commands_applied"` // stream commands applied
	// CommandsPerSecond counts the source's commands applied, OpsPerSecond
	// the commands the target acknowledged: fold sends a run as one.
	CommandsPerSecond float64 `json:"commands_per_second"`
	OpsPerSecond      float64 `json:"ops_per_second"`
	// Dropped counts writes the target does not hold, by reason
	// ("skipped": refused by the target under on_error = "skip").
	Dropped   map[string]int64 `json:"dropped"`
	LastError string           `json:"last_error"`
	// ShardSet is "I/N" when this process takes a share of a cluster
	// source's shards (shards I/N); Shards lists the ones it takes.
	ShardSet string `json:"shard_set,omitempty"`
	// Lease is this process's hold on the job's target (nil before it
	// has one): who runs the job there.
	Lease *Lease `json:"lease,omitempty"`
	// RestartingSeconds: the job is starting again by itself (the target
	// went back, a home slot moved) and has not been able to open its
	// target or source for this long (LastError says why); 0 otherwise.
	RestartingSeconds float64 `json:"restarting_seconds,omitempty"`
}

// Lease is the job's lease on its target (package lease).
type Lease struct {
	Owner     string    `json:"owner"` // host/pid/start
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Epoch     int64     `json:"epoch"`      // grows with each new owner
	RenewedAt time.Time `json:"renewed_at"` // last renewal of every lease it holds
}

// Shard is the state of one source shard: its replication link, how far
// the target is behind it, its snapshot transfer and its spool.
type Shard struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Phase  Phase  `json:"phase"`
	ReplID string `json:"replid"`
	// Reader is how the shard is read: "psync", or "scan" (SCAN + DUMP with
	// keyspace notifications; offsets are then ferry's own stream's).
	Reader string `json:"reader"`

	ReceivedOffset int64   `json:"received_offset"` // last source byte received
	AppliedOffset  int64   `json:"applied_offset"`  // last source byte the target acknowledged
	LagBytes       int64   `json:"lag_bytes"`
	LagSeconds     float64 `json:"lag_seconds"`

	RDBBytesTotal    int64 `json:"rdb_bytes_total"` // -1: unknown (diskless transfer)
	RDBBytesReceived int64 `json:"rdb_bytes_received"`
	RDBBytesApplied  int64 `json:"rdb_bytes_applied"`
	// SourceKeys is the source's key count (INFO keyspace) when the
	// snapshot began, -1 unknown: what a diskless snapshot's percentage
	// and ETA are estimated from.
	SourceKeys int64 `json:"source_keys"`

	FullSyncs    int64 `json:"full_syncs"`
	PartialSyncs int64 `json:"partial_syncs"`
	Reconnects   int64 `json:"reconnects"`

	SpoolMemoryBytes int64 `json:"spool_memory_bytes"`
	SpoolDiskBytes   int64 `json:"spool_disk_bytes"`

	// DisconnectedSeconds is how long the link to the source has been
	// down (0 while it is up).
	DisconnectedSeconds float64 `json:"disconnected_seconds"`

	// Scan reader: passes after the first (after a gap in the
	// notifications), changed keys waiting to be read again, and the keys
	// read by the current pass out of the source's DBSIZE at its start.
	Rescans       int64 `json:"rescans,omitempty"`
	RereadQueue   int64 `json:"reread_queue,omitempty"`
	ScanKeys      int64 `json:"scan_keys,omitempty"`
	ScanKeysTotal int64 `json:"scan_keys_total,omitempty"`
	// BigValues: values read in pieces rather than with one DUMP.
	BigValues int64 `json:"big_values,omitempty"`

	LastError string `json:"last_error"`
}

// Writer is the state of the writer of one target master.
type Writer struct {
	Name      string `json:"name"`
	Addr      string `json:"addr"`
	Connected bool   `json:"connected"`
	// DisconnectedSeconds is how long the target has been unreachable (0
	// while connected).
	DisconnectedSeconds float64 `json:"disconnected_seconds"`

	Reconnects int64 `json:"reconnects"`
	Batches    int64 `json:"batches"`
	Ops        int64 `json:"ops"`
	Bytes      int64 `json:"bytes"`
	Skipped    int64 `json:"skipped"` // commands refused by the target and skipped
	Pings      int64 `json:"pings"`

	InflightBytes            int64   `json:"inflight_bytes"` // sent, not acknowledged
	QueuedBytes              int64   `json:"queued_bytes"`   // waiting to be sent
	ConnAgeSeconds           float64 `json:"conn_age_seconds"`
	KeepaliveIntervalSeconds float64 `json:"keepalive_interval_seconds"`

	// The source position the target itself holds (its fence marker).
	AppliedReplID string `json:"applied_replid"`
	AppliedOffset int64  `json:"applied_offset"`
	AppliedState  string `json:"applied_state"`

	LastError string `json:"last_error"`
}

// Source returns a job's current state. The server calls it on every
// request and scrape, from any goroutine: it must be cheap and safe for
// concurrent use.
type Source func() Job

// Phase is where a job, or one of its source shards, is.
type Phase string

// The phases, roughly in the order a job goes through them.
const (
	PhaseQueued        Phase = "queued"    // a batch job waiting for a free slot (max_parallel)
	PhaseVerifying     Phase = "verifying" // a verify job comparing
	PhaseConnecting    Phase = "connecting"
	PhaseHandshake     Phase = "handshake"
	PhaseWaitingBGSave Phase = "waiting-bgsave" // the source prepares its snapshot
	PhaseRunning       Phase = "running"        // connected; the shards have their own phases
	PhaseRDB           Phase = "rdb"            // a snapshot is applied
	PhaseImport        Phase = "import"         // an RDB or AOF file is applied
	PhaseScan          Phase = "scan"           // a scan reader's pass
	PhaseSweeping      Phase = "sweeping"       // keys an earlier snapshot left are removed
	PhaseStreaming     Phase = "streaming"
	PhaseDone          Phase = "done"
	// PhaseFailed is the phase of a job that stopped on an error; /healthz
	// reports such jobs.
	PhaseFailed Phase = "failed"
	// PhaseCancelled: stopped by a signal before it was done.
	PhaseCancelled Phase = "cancelled"
)

// UnreadyAfter is how long a connection may be down before its job is not
// ready (/readyz 503, ferry_up 0): a reconnect within it is routine.
const UnreadyAfter = 10 * time.Second

// NotReady says why the job is not ready, one reason per part ("" parts:
// it is ready): it failed, a source link or target connection has been
// down longer than UnreadyAfter, or the job has been starting again by
// itself that long without reaching its peers.
func (j Job) NotReady() []string {
	var why []string
	if j.Phase == PhaseFailed {
		line := "failed"
		if j.LastError != "" {
			line += ": " + oneLine(j.LastError)
		}
		why = append(why, line)
	}
	down := UnreadyAfter.Seconds()
	if j.RestartingSeconds > down {
		line := fmt.Sprintf("restarting: target or source not reachable for %.0f s", j.RestartingSeconds)
		if j.LastError != "" {
			line += ": " + oneLine(j.LastError)
		}
		why = append(why, line)
	}
	for _, s := range j.Shards {
		if s.DisconnectedSeconds > down {
			line := fmt.Sprintf("source %s (%s) disconnected for %.0f s", s.Name, s.Addr, s.DisconnectedSeconds)
			if s.LastError != "" {
				line += ": " + oneLine(s.LastError)
			}
			why = append(why, line)
		}
	}
	for _, w := range j.Writers {
		if w.DisconnectedSeconds > down {
			line := fmt.Sprintf("writer %s (%s) disconnected for %.0f s", w.Name, w.Addr, w.DisconnectedSeconds)
			if w.LastError != "" {
				line += ": " + oneLine(w.LastError)
			}
			why = append(why, line)
		}
	}
	return why
}

// Phases are the known phases, in the order a job usually goes through
// them. ferry_phase reports each of them (0 or 1) so that a dashboard sees
// a phase end, not just stop being reported.
var Phases = []Phase{PhaseQueued, PhaseConnecting, PhaseHandshake, PhaseWaitingBGSave, PhaseRunning, PhaseScan, PhaseRDB, PhaseImport,
	PhaseSweeping, PhaseStreaming, PhaseVerifying, PhaseDone, PhaseFailed, PhaseCancelled}

// snapshot calls src and cleans what it returns: the registered name wins,
// nil lists become empty ones, shard and writer names are unique, and no
// password is left in an address or an error.
func snapshot(name string, src Source) (j Job) {
	defer func() {
		if r := recover(); r != nil {
			// A broken Source must not take the process down with it.
			j = Job{Name: name, LastError: fmt.Sprintf("status: snapshot of job %s failed: %v", name, r)}
			j.Shards, j.Writers = []Shard{}, []Writer{}
		}
	}()
	j = src()
	j.Name = name
	j.LastError = scrubText(j.LastError)
	j.OpsPerSecond, j.CommandsPerSecond = finite(j.OpsPerSecond), finite(j.CommandsPerSecond)
	// Copy the lists: the Source may hand out slices it keeps mutating.
	shards := make([]Shard, len(j.Shards))
	copy(shards, j.Shards)
	seen := map[string]int{}
	for i := range shards {
		s := &shards[i]
		s.Addr = scrubAddr(s.Addr)
		s.LastError = scrubText(s.LastError)
		s.LagSeconds = finite(s.LagSeconds)
		s.DisconnectedSeconds = finite(s.DisconnectedSeconds)
		s.Name = uniqueName(seen, s.Name, s.Addr, i)
	}
	writers := make([]Writer, len(j.Writers))
	copy(writers, j.Writers)
	seen = map[string]int{}
	for i := range writers {
		w := &writers[i]
		w.Addr = scrubAddr(w.Addr)
		w.LastError = scrubText(w.LastError)
		w.ConnAgeSeconds = finite(w.ConnAgeSeconds)
		w.DisconnectedSeconds = finite(w.DisconnectedSeconds)
		w.KeepaliveIntervalSeconds = finite(w.KeepaliveIntervalSeconds)
		w.Name = uniqueName(seen, w.Name, w.Addr, i)
	}
	j.Shards, j.Writers = shards, writers
	// Skips are counted by the writers; the job's drops add them up.
	dropped := map[string]int64{"skipped": 0}
	for k, v := range j.Dropped {
		dropped[k] = v
	}
	for _, w := range writers {
		dropped["skipped"] += w.Skipped
	}
	j.Dropped = dropped
	return j
}

// finite turns NaN and ±Inf, which JSON cannot carry, into 0.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// uniqueName gives a shard or writer a name usable as a metric label: its
// own, else its address, else its index; a repeated name gets "#2", "#3"….
func uniqueName(seen map[string]int, name, addr string, i int) string {
	if name == "" {
		name = addr
	}
	if name == "" {
		name = fmt.Sprint(i)
	}
	seen[name]++
	if n := seen[name]; n > 1 {
		name = fmt.Sprintf("%s#%d", name, n)
	}
	return name
}

// scrubAddr removes the password from an address: "redis://user:***@host",
// or "redis://***@host" when the user info has no colon (it is then a
// password). Callers give redacted addresses already; this is a second
// fence.
func scrubAddr(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i > 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return s
	}
	return prefix + redactUserinfo(rest[:at]) + rest[at:]
}

// urlUserinfo matches "scheme://userinfo@" inside free text; the user info
// runs to the last "@" before a slash or a space.
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^\s/@]*(?:@[^\s/@]*)*)@`)

// scrubText removes the passwords of URLs found in free text (errors).
func scrubText(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	return urlUserinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlUserinfo.FindStringSubmatch(m)
		return sub[1] + redactUserinfo(sub[2]) + "@"
	})
}

// redactUserinfo keeps the user name and hides the password: "user:***",
// or "***" when there is no colon.
func redactUserinfo(ui string) string {
	if c := strings.IndexByte(ui, ':'); c >= 0 {
		return ui[:c+1] + "***"
	}
	return "***"
}
