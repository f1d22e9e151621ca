// Package conf is ferry's configuration: the TOML job and batch files, their
// defaults, ${ENV} expansion, validation with clear messages, Redis addresses,
// TLS settings and the redaction of secrets.
//
// The usual sequence for one job is
//
//	j := conf.Default()           // no file
//	j, err := conf.LoadJob(path)  // or a file: syntax, unknown keys, types, per-field values
//	... apply command-line flags to j ...
//	err = j.Validate()            // everything: required fields, cross-field rules, files
//
// A batch file is loaded and validated in one step by LoadBatch.
//
// Passwords never appear in an error, in Job.String or in Endpoint.Redacted.
package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Modes of a job. The empty mode is a job whose mode the caller has not
// told (Validate then applies the rules common to migrate and sync).
// The enumerated settings are types of their own past this package: a
// consumer compares with the constants, never with a string it spelled.

// Mode is what a job does: the command, or a batch file's mode key.
type Mode string

const (
	ModeMigrate Mode = "migrate"
	ModeSync    Mode = "sync"
	ModeVerify  Mode = "verify"
)

// Nonempty is target_nonempty: what to do when the target holds keys.
type Nonempty string

const (
	NonemptyRefuse    Nonempty = "refuse"
	NonemptyOverwrite Nonempty = "overwrite"
	NonemptyFlush     Nonempty = "flush"
)

// Restore is restore: how snapshot values are written.
type Restore string

const (
	RestoreAuto   Restore = "auto"
	RestoreAlways Restore = "always"
	RestoreNever  Restore = "never"
)

// Fence is fence: whether each batch is a transaction with its marker.
type Fence string

const (
	FenceMulti Fence = "multi"
	FenceOff   Fence = "off"
)

// CPUScheduling is cpu_scheduling: the Linux scheduling policy of ferry's
// threads (internal/cpusched says why batch helps a full sync).
type CPUScheduling string

const (
	CPUAuto   CPUScheduling = "auto" // batch while a snapshot is applied
	CPUBatch  CPUScheduling = "batch"
	CPUNormal CPUScheduling = "normal"
)

// OnError is on_error: what a write the target refuses does.
type OnError string

const (
	OnErrorStop OnError = "stop"
	OnErrorSkip OnError = "skip"
)

// OnUnsupported is on_unsupported: what data the target cannot hold does.
type OnUnsupported string

const (
	UnsupportedRefuse OnUnsupported = "refuse"
	UnsupportedDrop   OnUnsupported = "drop"
)

// ReadFrom is read_from: which server of a source shard is read.
type ReadFrom string

const (
	ReadFromMaster  ReadFrom = "master"
	ReadFromReplica ReadFrom = "replica"
)

// Reader is reader: how a source is read.
type Reader string

const (
	ReaderAuto  Reader = "auto"
	ReaderPSync Reader = "psync"
	ReaderScan  Reader = "scan"
)

// Allowed values of the enumerated settings, in the order error messages list them.
var (
	Modes              = []Mode{ModeMigrate, ModeSync, ModeVerify}
	NonemptyModes      = []Nonempty{NonemptyRefuse, NonemptyOverwrite, NonemptyFlush}
	RestoreModes       = []Restore{RestoreAuto, RestoreAlways, RestoreNever}
	FenceModes         = []Fence{FenceMulti, FenceOff}
	OnErrorModes       = []OnError{OnErrorStop, OnErrorSkip}
	OnUnsupportedModes = []OnUnsupported{UnsupportedRefuse, UnsupportedDrop}
	ReadFromModes      = []ReadFrom{ReadFromMaster, ReadFromReplica}
	ReaderModes        = []Reader{ReaderAuto, ReaderPSync, ReaderScan}
	LogLevels          = []string{"debug", "info", "warn", "error"}
	LogFormats         = []string{"auto", "console", "json"}
	CPUSchedulingModes = []CPUScheduling{CPUAuto, CPUBatch, CPUNormal}
	KeyTypes           = []string{"string", "list", "set", "zset", "hash", "stream", "module"}
	Schemes            = []string{"redis", "rediss", "sentinel"}
)

// Size units.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
)

// Job is one source→target job, with every setting typed. Its zero value is
// not useful: start from Default() or LoadJob.
type Job struct {
	Name string // key "name" (in a single-job file also "job", its old spelling); [a-zA-Z0-9_.-]{1,64}
	// Warnings are what loading the file found worth saying but not
	// refusing (an old spelling of a key); not a setting.
	Warnings []string
	// Mode is "", migrate, sync or verify. A single-job file has no mode
	// key: the CLI sets it from the command before Validate. Batch files set
	// it per job with "mode".
	Mode    Mode
	DataDir string // spool segments, temp files, checkpoints; see JobDir
	RDB     string // import this RDB file instead of a live source
	AOF     string // import this AOF (appendonlydir or appendonly.aof) instead of a live source

	Source Endpoint
	Target Endpoint

	TargetNonempty Nonempty
	Restore        Restore
	Fence          Fence
	// Fold: a run of pushes or adds to one key (LPUSH, SADD, HSET...), or
	// of DELs, UNLINKs or plain SETs (as MSET) of any keys, in the command
	// stream may go to the target as one command.
	Fold    bool
	OnError OnError
	// OnUnsupported: data the target cannot hold (per-field hash TTLs
	// into a server older than 7.4): refuse, or drop it and count it.
	OnUnsupported     OnUnsupported
	KeepaliveInterval time.Duration // > 0
	MaxConnAge        time.Duration // 0 = off
	DBMap             map[int]int   // source db -> target db; nil/empty = identity
	BatchMaxOps       int           // > 0
	BatchMaxBytes     int64         // > 0
	MaxInflightBytes  int64         // >= BatchMaxBytes
	SpoolMemory       int64         // > 0
	SpoolMaxDisk      int64         // 0 = unlimited
	MaxBulkLen        int64         // > 0: longest argument accepted in the replication stream
	StatusAddr        string        // host:port; "" = disabled (Validate turns "off" into "")
	Pprof             bool          // serve /debug/pprof/ on the status address
	LogLevel          string        // debug | info | warn | error
	LogFormat         string        // auto | console | json
	CPUScheduling     CPUScheduling // policy of the process's threads
	ProgressInterval  time.Duration // 0 = no progress lines
	MaxOpsPerSecond   int           // 0 = unlimited
	MaxBytesPerSecond int64         // 0 = unlimited
	CutoverPauseMax   time.Duration // > 0
	// RetryTimeout: migrate, run and imports give up (exit 1) once a peer
	// has been unreachable this long; sync keeps trying and reports
	// itself unready. 0 = never give up.
	RetryTimeout time.Duration
	// Shards: this process's share of a cluster source's shards (see
	// ShardSet); every shard by default.
	Shards ShardSet
	// StopTimeout bounds a graceful stop (SIGINT/SIGTERM): past it ferry
	// exits whatever the peers do. > 0.
	StopTimeout time.Duration
	// LeaseTTL is how long the job's lease on the target lasts without
	// renewal (renewed every third of it): a process that died leaves the
	// job to the next start after this long. >= 1s.
	LeaseTTL time.Duration
	// Takeover makes a start take the job's lease from a process that
	// still holds it (see package lease).
	Takeover       bool
	CutoverHook    string   // command run at cutover; "" = none
	CutoverHookEnv []string // names of variables passed through to the hook

	// CutoverHookTimeout bounds the hook's run; 0 = until shortly before
	// cutover_pause_max runs out (which also caps a longer value).
	CutoverHookTimeout time.Duration

	Filter Filter
}

// Endpoint is a source or target deployment.
type Endpoint struct {
	// Addr is the address as given (redis://, rediss://, sentinel://, or a
	// bare host:port meaning redis://). It may hold a password: log
	// Redacted(), never Addr. Validate re-derives Scheme, Hosts,
	// SentinelMaster and DB from Addr and Addrs, so a caller overriding the
	// address sets Addr only.
	Addr string
	// Addrs are more seed addresses of the same deployment (cluster seeds,
	// more sentinels, failover candidates): host:port, or scheme://host:port
	// with the scheme of Addr. No credentials, no path.
	Addrs []string

	Scheme         string   // redis | rediss | sentinel
	Hosts          []string // host:port (IPv6 in brackets), from Addr then Addrs, without duplicates
	SentinelMaster string   // master name, for sentinel://
	DB             int      // the /db of a redis(s):// address; 0 when absent. conf gives it no further meaning

	Username string
	// Password is the password after Validate, whichever way it was given:
	// in the address, as password (possibly from ${ENV}), or as
	// password_file.
	Password     string
	PasswordFile string

	// Credentials for the sentinels themselves (sentinel:// only); when
	// empty, callers should use none.
	SentinelUsername string
	SentinelPassword string

	ReadFrom ReadFrom // source only ("" on a target)
	// Reader is how the source is read: psync, scan (SCAN + DUMP with
	// keyspace notifications), or auto (psync, scan when the source refuses
	// replication). Source only.
	Reader Reader
	// ScanBigValue: the scan reader reads a value whose size (MEMORY
	// USAGE) is at least this in pieces (HSCAN, LRANGE…) instead of with
	// one DUMP; 0 = never. Source only.
	ScanBigValue int64
	TLS          TLS
	DialTimeout  time.Duration
}

// TLS settings of an endpoint. TLS is on when Enabled is set or the scheme
// is rediss (Validate then sets Enabled).
type TLS struct {
	Enabled            bool
	CAFile             string
	CertFile           string
	KeyFile            string
	ServerName         string
	InsecureSkipVerify bool
}

// Filter selects what is copied. Empty allow lists allow everything; the
// block lists win over the allow lists.
type Filter struct {
	DBs           []int
	BlockDBs      []int
	Prefixes      []string // key prefixes
	BlockPrefixes []string
	Regex         []string // Go regexp (RE2) syntax, unanchored
	BlockRegex    []string
	Types         []string // string list set zset hash stream module (lower case after Validate)
	BlockTypes    []string
	Commands      []string // stream commands (lower case after Validate)
	BlockCommands []string
}

// DefaultDataDir is data_dir when nothing sets it: the user's state
// directory ($XDG_STATE_HOME/ferry, else ~/.local/state/ferry), not the
// current directory, where a spool would land wherever ferry happened to be
// started (and a restart from elsewhere would not find it). Containers and
// the systemd unit set FERRY_DATA_DIR.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "ferry")
	}
	if h, err := os.UserHomeDir(); err == nil && filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "ferry")
	}
	return filepath.Join(os.TempDir(), "ferry")
}

// Default returns a job with every default filled in; it has no source and
// no target.
func Default() Job {
	return Job{
		Name:    "default",
		DataDir: DefaultDataDir(),
		Source: Endpoint{
			ReadFrom:     "master",
			Reader:       "auto",
			ScanBigValue: 8 * MiB,
			DialTimeout:  5 * time.Second,
		},
		Target: Endpoint{
			DialTimeout: 5 * time.Second,
		},
		TargetNonempty:    "refuse",
		Restore:           "auto",
		Fence:             "multi",
		Fold:              true,
		OnError:           "stop",
		OnUnsupported:     "refuse",
		KeepaliveInterval: 30 * time.Second,
		BatchMaxOps:       512,
		BatchMaxBytes:     1 * MiB,
		MaxInflightBytes:  16 * MiB,
		SpoolMemory:       64 * MiB,
		MaxBulkLen:        512 * MiB,
		StatusAddr:        "127.0.0.1:9121",
		LogLevel:          "info",
		LogFormat:         "auto",
		CPUScheduling:     CPUAuto,
		ProgressInterval:  5 * time.Second,
		CutoverPauseMax:   30 * time.Second,
		RetryTimeout:      5 * time.Minute,
		StopTimeout:       30 * time.Second,
		LeaseTTL:          30 * time.Second,
		Shards:            ShardSet{N: 1},
	}
}

// JobDir is the directory of this job's own files: DataDir/Name. Jobs of a
// batch may share a data_dir; their names are unique, so their JobDirs are.
func (j Job) JobDir() string { return filepath.Join(j.DataDir, j.Name) }

// IsSet reports whether an address was given for the endpoint.
func (e Endpoint) IsSet() bool { return e.Addr != "" }

// TLSOn reports whether the endpoint uses TLS (tls.enabled or rediss://).
func (e Endpoint) TLSOn() bool { return e.TLS.Enabled || e.Scheme == "rediss" }

// String is Redacted, so that %v never prints a password.
func (e Endpoint) String() string { return e.Redacted() }

// GoString is Redacted too, so that %#v never prints a password.
func (e Endpoint) GoString() string { return fmt.Sprintf("conf.Endpoint(%q)", e.Redacted()) }

// Error is a configuration error: Error() is "config: <field>: <msg>".
// Field is a key path ("restore", "source.tls.ca_file",
// "job[orders].target.addr"), or for whole-file problems the file name,
// with line and column for syntax errors ("jobs.toml:3:9"). It never holds
// a secret.
type Error struct {
	Field string
	Msg   string
	Err   error // underlying error, if any (for errors.Is/As); its text is already in Msg
}

func (e *Error) Error() string {
	if e.Field == "" {
		return "config: " + e.Msg
	}
	return "config: " + e.Field + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errf(field, format string, args ...any) *Error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// prefixed returns err with its field put under prefix ("source", "job[x]").
func prefixed(prefix string, err error) error {
	e, ok := err.(*Error)
	if !ok || prefix == "" {
		return err
	}
	c := *e
	if c.Field == "" {
		c.Field = prefix
	} else {
		c.Field = prefix + "." + c.Field
	}
	return &c
}
