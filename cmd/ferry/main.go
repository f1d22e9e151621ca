// Command ferry moves the data of one Redis deployment into another and keeps
// it in sync.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/job"
	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/status"
	"github.com/ferry-dev/ferry/verify"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes: the contract scripts rely on.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // bad usage or configuration
)

// usageError is a mistake in the command line or the configuration.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	// go-redis logs dial retries and pool trouble on stderr by itself; they
	// go to ferry's debug log instead, so that a failure shows as one line.
	redis.SetLogger(redisLog{})
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one subcommand of the CLI. To add one, add an entry to commands.
type command struct {
	name    string
	summary string // one line for 'ferry --help'
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"sync", "copy the source (or an RDB or AOF file) to the target, then follow its writes until stopped",
		func(args []string, stdout, stderr io.Writer) error { return cmdSync(args, stdout, stderr, false) }},
	{"migrate", "like sync, but exit once the target has caught up with the source",
		func(args []string, stdout, stderr io.Writer) error { return cmdSync(args, stdout, stderr, true) }},
	{"verify", "compare the source with the target, key by key", cmdVerify},
	{"run", "run the jobs of a batch file (run -c jobs.toml), several at once", cmdRun},
	{"plan", "plan -c job.toml --processes N: which source shards each of N processes takes (shards I/N)", cmdPlan},
	{"config", "config check -c FILE: validate a config file and print it, secrets redacted;\n            config import SHAKE.toml: translate a RedisShake v4 config into a ferry job file", cmdConfig},
	{"version", "print the version", cmdVersion},
}

func topUsage() string {
	var b strings.Builder
	b.WriteString(`ferry moves the data of one Redis deployment into another and keeps it in sync.

Usage:
  ferry <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString(`
Run 'ferry <command> --help' for a command's flags. Every flag --foo-bar can
also be set as the environment variable FERRY_FOO_BAR (a flag wins over it, it
wins over the config file). Configuration reference: the README and
conf/example.toml.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
`)
	return b.String()
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// run is main without os.Exit: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage())
		fmt.Fprintln(stderr, "ferry: missing command (see 'ferry --help')")
		return exitUsage
	}
	var err error
	switch name := args[0]; name {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, topUsage())
		return exitOK
	case "help": // ferry help [command]
		if len(args) == 1 {
			fmt.Fprint(stdout, topUsage())
			return exitOK
		}
		if c := lookup(args[1]); c != nil {
			err = c.run([]string{"--help"}, stdout, stderr)
		} else {
			err = usageError{fmt.Errorf("unknown command %q (see 'ferry --help')", args[1])}
		}
	case "-version", "--version":
		err = cmdVersion(nil, stdout, stderr)
	default:
		if c := lookup(name); c != nil {
			err = c.run(args[1:], stdout, stderr)
		} else if strings.HasPrefix(name, "-") {
			err = usageError{fmt.Errorf("flag %s before the command: write 'ferry <command> %s ...' (see 'ferry --help')", name, name)}
		} else {
			err = usageError{fmt.Errorf("unknown command %q (see 'ferry --help')", name)}
		}
	}
	return report(err, stderr)
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprintln(stdout, "Usage: ferry version\n\nPrint ferry's version, the VCS revision and Go version it was built with, and the platform.")
			return nil
		}
		return usageError{fmt.Errorf("version: unexpected argument %q", args[0])}
	}
	fmt.Fprintln(stdout, versionLine(buildInfo()))
	return nil
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" || a == "help" }

// report prints one clear line for an error and picks the exit code.
func report(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue usageError
	var ce *conf.Error
	if errors.As(err, &ue) || errors.As(err, &ce) {
		fmt.Fprintf(stderr, "ferry: %s\n", oneLine(err.Error()))
		return exitUsage
	}
	fmt.Fprintf(stderr, "ferry: error: %s\n", oneLine(err.Error()))
	return exitFailure
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// jobFlags are the flags shared by the commands that run a job.
type jobFlags struct {
	fs                  *flag.FlagSet
	name, summary       string
	stderr              io.Writer
	stdout              io.Writer // where --help goes; nil: stderr
	config              string
	source, target, rdb string
	aof                 string
	jobName             string
	reader              string
	logLevel, logFormat string
	dataDir             string
	credFlags           [2]struct{ username, passwordFile string } // source, target
	run                 *runFlags                                  // nil for verify

	getenv   lookupEnv       // os.LookupEnv
	fromArgs map[string]bool // flags given on the command line (not from the environment)
	warnings []string        // for the log, once it exists
}

// runFlags are the flags of the commands that run a job.
type runFlags struct {
	statusAddr, targetNonempty, progress, shards, cpuScheduling string
}

func newJobFlags(name, summary string, stderr io.Writer) *jobFlags {
	f := &jobFlags{fs: flag.NewFlagSet("ferry "+name, flag.ContinueOnError), name: name, summary: summary, stderr: stderr}
	// Parse prints nothing: --help is printed by load, and a bad flag is
	// reported as one line.
	f.fs.SetOutput(io.Discard)
	f.fs.Usage = func() {}
	f.fs.StringVar(&f.config, "c", "", "config file (TOML)")
	f.fs.StringVar(&f.config, "config", "", "config file (TOML), same as -c")
	f.fs.StringVar(&f.source, "source", "", "source address: redis://[user:pass@]host:port, rediss://… for TLS, or host:port (overrides the file)")
	f.fs.StringVar(&f.target, "target", "", "target address, same forms (overrides the file)")
	f.fs.StringVar(&f.rdb, "rdb", "", "import this RDB file (a dump.rdb) instead of reading a live source")
	f.fs.StringVar(&f.aof, "aof", "", "import this AOF instead of reading a live source: a Redis 7 appendonlydir or one appendonly.aof")
	f.fs.StringVar(&f.reader, "reader", "", "how to read the source: auto (PSYNC, or SCAN + keyspace notifications when the source refuses PSYNC) | psync | scan (overrides the file)")
	f.fs.StringVar(&f.jobName, "job", "", "job name: tags the logs and names the marker key __ferry:<job>:pos (overrides the file)")
	f.fs.StringVar(&f.logLevel, "log-level", "", "debug | info | warn | error (default info)")
	f.fs.StringVar(&f.logFormat, "log-format", "", "auto | console | json (default auto: console on a terminal, JSON otherwise)")
	f.fs.StringVar(&f.dataDir, "data-dir", "", "directory of ferry's own files (spool, checkpoints), data_dir of the file (default $XDG_STATE_HOME/ferry or ~/.local/state/ferry)")
	for i, side := range []string{"source", "target"} {
		f.fs.StringVar(&f.credFlags[i].username, side+"-username", "", "the "+side+"'s ACL user (overrides the file and the address)")
		f.fs.StringVar(&f.credFlags[i].passwordFile, side+"-password-file", "", "file holding the "+side+"'s password, one trailing newline trimmed (overrides the file, $"+envName(side+"-password")+" and the address)")
	}
	if name != "verify" {
		f.run = &runFlags{}
		f.fs.StringVar(&f.run.statusAddr, "status-addr", "", "status server address host:port (/status, /metrics), or off; status_addr of the file (default 127.0.0.1:9121)")
		f.fs.StringVar(&f.run.targetNonempty, "target-nonempty", "", "refuse | overwrite | flush: what to do when the target already holds keys (default refuse)")
		f.fs.StringVar(&f.run.progress, "progress", "auto", "auto | bar | line | off: a progress bar (auto: on a terminal), only the periodic progress log lines, or neither")
		f.fs.StringVar(&f.run.cpuScheduling, "cpu-scheduling", "", "auto | batch | normal: the Linux scheduling policy of ferry's threads; cpu_scheduling of the file (default auto: batch, which never preempts a server on the same cores at a wake-up, while a snapshot is applied)")
		f.fs.StringVar(&f.run.shards, "shards", "", "I/N: take only this process's share of a cluster source's shards (N processes split the source; see ferry plan); ordinal/N takes I from the host name")
	}
	f.getenv = os.LookupEnv
	return f
}

// usage prints the command's help to w.
func (f *jobFlags) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: ferry %s [-c FILE] [flags]\n\n%s\n\nFlags:\n", f.name, f.summary)
	printFlags(w, f.fs, true)
}

// load builds the job configuration: the file (if any), then the flags.
// --help prints the usage and returns flag.ErrHelp.
func (f *jobFlags) load(args []string, mode conf.Mode) (conf.Job, error) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			out := f.stdout
			if out == nil {
				out = f.stderr
			}
			f.usage(out)
			return conf.Job{}, err
		}
		return conf.Job{}, usageError{fmt.Errorf("%s: %v (see 'ferry %s --help')", f.name, err, f.name)}
	}
	if f.fs.NArg() > 0 {
		return conf.Job{}, usageError{fmt.Errorf("%s: unexpected argument %q (flags start with -, see 'ferry %s --help')", f.name, f.fs.Arg(0), f.name)}
	}
	var err error
	if f.fromArgs, err = applyEnv(f.fs, map[string]string{"config": "c"}, f.getenv); err != nil {
		return conf.Job{}, err
	}
	if f.run != nil {
		switch f.run.progress = strings.ToLower(strings.TrimSpace(f.run.progress)); f.run.progress {
		case "auto", "bar", "line", "off":
		default:
			return conf.Job{}, usageError{fmt.Errorf("--progress %q is not one of auto, bar, line, off", f.run.progress)}
		}
	}
	j := conf.Default()
	if f.config != "" {
		if j, err = conf.LoadJob(f.config); err != nil {
			return conf.Job{}, usageError{err}
		}
		f.warnings = append(f.warnings, j.Warnings...)
	}
	if f.source != "" {
		j.Source.Addr = f.source
		if f.rdb == "" {
			j.RDB = ""
		}
	}
	if f.target != "" {
		j.Target.Addr = f.target
	}
	if f.rdb != "" {
		j.RDB = f.rdb
		if f.source == "" {
			j.Source = conf.Endpoint{}
		}
	}
	f.applyAOF(&j)
	if f.reader != "" {
		j.Source.Reader = conf.Reader(f.reader)
	}
	if f.jobName != "" {
		j.Name = f.jobName
	}
	if f.logLevel != "" {
		j.LogLevel = f.logLevel
	}
	if f.logFormat != "" {
		j.LogFormat = f.logFormat
	}
	if f.dataDir != "" {
		j.DataDir = f.dataDir
	}
	if r := f.run; r != nil {
		if r.statusAddr != "" {
			j.StatusAddr = r.statusAddr
		}
		if r.targetNonempty != "" {
			j.TargetNonempty = conf.Nonempty(r.targetNonempty)
		}
		if r.cpuScheduling != "" {
			j.CPUScheduling = conf.CPUScheduling(r.cpuScheduling)
		}
		if r.shards != "" {
			v, err := conf.ParseShards(r.shards)
			if err != nil {
				return conf.Job{}, usageError{fmt.Errorf("--shards %w", err)}
			}
			j.Shards = v
		}
		if r.progress == "off" {
			j.ProgressInterval = 0
		}
	}
	f.credentials(&j.Source, "source", f.source, f.credFlags[0].username, f.credFlags[0].passwordFile)
	f.credentials(&j.Target, "target", f.target, f.credFlags[1].username, f.credFlags[1].passwordFile)
	j.Mode = mode
	if err := j.Validate(); err != nil {
		return conf.Job{}, usageError{err}
	}
	f.warnings = append(f.warnings, passwordFileWarnings(j)...)
	return j, nil
}

// showBar reports whether sync and migrate draw the progress bar on stderr.
func (f *jobFlags) showBar(stderr io.Writer) bool {
	switch f.run.progress {
	case "bar":
		return true
	case "auto":
		return isTerminal(stderr)
	}
	return false
}

// logWarnings logs the warnings of loading the configuration.
func (f *jobFlags) logWarnings(log zerolog.Logger) {
	for _, w := range f.warnings {
		log.Warn().Msg(w)
	}
}

// newLogger is the log of one job, its lines tagged with the job's name.
func newLogger(j conf.Job, stderr io.Writer) zerolog.Logger {
	log, _ := baseLogger(j.LogLevel, j.LogFormat, stderr)
	return log.With().Str("job", j.Name).Logger()
}

// baseLogger is the process's log on stderr, and stderr as shared by the
// log and a progress bar.
func baseLogger(levelName, format string, stderr io.Writer) (zerolog.Logger, *console) {
	level, err := zerolog.ParseLevel(levelName)
	if err != nil || levelName == "" {
		level = zerolog.InfoLevel
	}
	if format == "" || format == "auto" {
		format = "json"
		if isTerminal(stderr) {
			format = "console"
		}
	}
	con := &console{w: stderr}
	var w io.Writer = con
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: con, TimeFormat: time.TimeOnly, NoColor: !isTerminal(stderr)}
	}
	return zerolog.New(w).Level(level).Hook(msTime{}), con
}

// msTime stamps each line with the time to the millisecond (RFC 3339, UTC):
// zerolog's own Timestamp has whole seconds unless a package-wide setting
// is changed, and two lines of one second must still be told apart.
type msTime struct{}

func (msTime) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

// isTerminal: a character device is not enough (/dev/null is one); the
// terminal ioctl decides.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

func cmdSync(args []string, stdout, stderr io.Writer, migrate bool) error {
	name, summary := "sync", `Copy the source (or an RDB file given with --rdb, an AOF with --aof) to the target, then follow the
source's writes until SIGINT or SIGTERM. On a stop, in-flight writes are flushed and
the resume point is kept on the target (key __ferry:<job>:pos): the next run with
the same job name resumes there. An RDB or AOF import ends when the file is applied.`
	if migrate {
		name, summary = "migrate", `Copy the source to the target and exit 0 once the target has applied every write
the source had when the snapshot was applied. The marker key is removed at the end.`
	}
	f := newJobFlags(name, summary, stderr)
	f.stdout = stdout
	var cut cutoverFlags
	var pprofFlag, takeover bool
	f.fs.BoolVar(&pprofFlag, "pprof", false, "serve Go profiles at /debug/pprof/ on the status address (pprof in the file; off by default)")
	f.fs.BoolVar(&takeover, "takeover", false, "take the job over from a process that holds its lease on the target (it stops); takeover in the file")
	if migrate {
		f.fs.BoolVar(&cut.on, "cutover", false, "once caught up: pause the source's writes (CLIENT PAUSE … WRITE, at most cutover_pause_max), wait until the target has applied everything, run cutover_hook, report \"cutover ready\"")
		f.fs.BoolVar(&cut.unpause, "unpause", false, "with --cutover: unpause the source at the end instead of letting the pause run out")
		f.fs.BoolVar(&cut.verify, "verify", false, "with --cutover: verify the frozen source against the target before the pause ends")
	}
	jc, err := f.load(args, conf.Mode(name))
	if takeover {
		jc.Takeover = true
	}
	if err != nil {
		if pe := missingAOF(err); pe != nil {
			return fmt.Errorf("cannot read AOF %s: %v", pe.Path, pe.Err)
		}
		if pe := missingRDB(err); pe != nil {
			// The input file is data, not configuration: a runtime failure.
			return fmt.Errorf("cannot read RDB file %s: %v", pe.Path, pe.Err)
		}
		return err
	}
	if err := notBuilt(jc, ""); err != nil {
		return err
	}
	if err := cut.check(jc); err != nil {
		return err
	}
	base, con := baseLogger(jc.LogLevel, jc.LogFormat, stderr)
	log := base.With().Str("job", jc.Name).Logger()
	redisLogger.Store(&log)
	f.logWarnings(log)
	setMemoryLimit(log, jc)

	srv, stopStatus, err := statusServer(jc.StatusAddr, jc.Pprof || pprofFlag, base)
	if err != nil {
		return err
	}
	defer stopStatus()
	js := newJobStatus(jc, "")
	srv.Register(jc.Name, js.source)

	ctx, stop := signalContext(stderr, jc.StopTimeout)
	defer stop()

	var progressDone chan struct{}
	progressCtx, stopProgress := context.WithCancel(context.Background())
	defer stopProgress()
	if f.showBar(stderr) {
		progressDone = make(chan struct{})
		go func() {
			defer close(progressDone)
			showProgress(progressCtx, js, con)
		}()
	}
	sum, err := runJob(ctx, jc, log, js, cut.options(jc, log, stdout), newScheduler(log, jc.CPUScheduling))
	stopProgress()
	if progressDone != nil {
		<-progressDone
	}
	if err != nil {
		js.finish(status.PhaseFailed, err)
		return err
	}
	js.finish(status.PhaseDone, nil)
	secs := sum.Elapsed.Seconds()
	skipped := skippedNote(sum) + fieldTTLNote(sum)
	switch {
	case jc.AOF != "":
		fmt.Fprint(stdout, aofSummary(sum))
	case jc.RDB != "":
		fmt.Fprintf(stdout, "imported %d keys (%s of RDB) in %.1f s: %.0f keys/s%s%s\n",
			sum.Keys, status.Bytes(sum.RDBBytes), secs, float64(sum.Keys)/max(secs, 1e-3), emptyNote(sum), skipped)
	case migrate:
		fmt.Fprintf(stdout, "migrated %d keys and %d commands in %.1f s; target caught up at offset %d (lag %d bytes)%s\n",
			sum.Keys, sum.Commands, secs, sum.Applied.Offset, sum.Lag, skipped)
	default:
		fmt.Fprintf(stdout, "stopped after %.1f s: %d keys, %d commands applied; resume point %s:%d saved on the target%s\n",
			secs, sum.Keys, sum.Commands, sum.Applied.ReplID, sum.Applied.Offset, skipped)
	}
	return nil
}

// runJob runs a sync, migrate or import job (jc.Mode); js shows its live
// state meanwhile (the caller finishes it).
func runJob(ctx context.Context, jc conf.Job, log zerolog.Logger, js *jobStatus, co *job.Cutover, sc scheduler) (job.Summary, error) {
	migrate := jc.Mode == conf.ModeMigrate
	defer sc.procs.set(jc.Name, 0)
	sum, err := job.Run(ctx, job.Options{Conf: jc, Migrate: migrate, Log: log, Observe: js.observe, Cutover: co, StopTimeout: jc.StopTimeout,
		OnStreams: func(n int) { sc.procs.set(jc.Name, n) }, OnSnapshot: sc.cpu.snapshot})
	if err == nil && migrate && !jc.Import() && !sum.CaughtUp {
		// Stopped by a signal: the run ended, but not because the target
		// caught up.
		err = fmt.Errorf("migrate %w", errInterrupted)
	}
	return sum, explain(err)
}

// notBuilt refuses settings that conf accepts but this build's sync and
// migrate do not implement yet: ignoring them would copy data the user meant
// to leave out, write into another db than asked, or skip a throttle or a
// hook. Remove an entry here when its feature lands.
// prefix goes before the key in the message ("job[orders].").
func notBuilt(j conf.Job, prefix string) error {
	for _, c := range []struct {
		key string
		set bool
		why string
	}{
		{"target.addr", j.Target.Scheme == "sentinel", "sentinel:// is planned; give the master's redis:// address"},
		{"source.addr", j.Source.DB != 0, "ferry replicates every db of the source; a /db in the address is not supported"},
		{"target.addr", j.Target.DB != 0, `a /db in the target address is not supported; map databases with db_map = { "0" = N }`},
	} {
		if c.set {
			return usageError{fmt.Errorf("config: %s%s: not supported by this build of ferry (%s); remove it", prefix, c.key, c.why)}
		}
	}
	return nil
}

// missingRDB returns the file error when the configuration failed only
// because the RDB file to import cannot be found or read.
func missingRDB(err error) *fs.PathError {
	var ce *conf.Error
	var pe *fs.PathError
	if errors.As(err, &ce) && ce.Field == "rdb" && errors.As(err, &pe) &&
		(errors.Is(pe, fs.ErrNotExist) || errors.Is(pe, fs.ErrPermission)) {
		return pe
	}
	return nil
}

// explain adds what the user needs to know to errors whose text is terse.
func explain(err error) error {
	var fe *rdb.FormatError
	switch {
	case errors.Is(err, rdb.ErrChecksum):
		return fmt.Errorf("%w (checksum error: the RDB data is damaged)", err)
	case errors.As(err, &fe) && errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w (the RDB data ends early: truncated?)", err)
	}
	return err
}

func cmdConfig(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: ferry config check -c FILE [flags], or ferry config import [-o FILE] SHAKE.toml"
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	if isHelp(args[0]) {
		fmt.Fprintf(stdout, "Usage: ferry config check -c FILE [flags]\n\n%s\n\n", configCheckSummary)
		fmt.Fprintf(stdout, "Usage: ferry config import [-o FILE] SHAKE.toml\n\n%s\n", configImportSummary)
		return nil
	}
	if args[0] == "import" {
		return cmdConfigImport(args[1:], stdout, stderr)
	}
	if args[0] != "check" {
		return usageError{fmt.Errorf("config: unknown subcommand %q (%s)", args[0], usage)}
	}
	if path, ok := configPath(args[1:]); ok && conf.IsBatch(path) {
		return checkBatch(path, len(args) > 3, stdout)
	}
	f := newJobFlags("config check", configCheckSummary, stderr)
	f.stdout = stdout
	if len(args) == 1 && !anyEnv(f.fs, f.getenv) {
		return usageError{errors.New("config check: no configuration given (" + usage + ")")}
	}
	jc, err := f.load(args[1:], "")
	if err != nil {
		return err
	}
	for _, w := range f.warnings {
		fmt.Fprintf(stderr, "ferry: warning: %s\n", w)
	}
	// The same checks as sync and migrate: a file that passes here runs.
	if err := notBuilt(jc, ""); err != nil {
		return err
	}
	fmt.Fprint(stdout, jc.String())
	return nil
}

const configCheckSummary = `Validate a job's configuration (the file, then the flags over it) and print it as
ferry will use it, with every default filled in and secrets shown as ***.
A batch file (for ferry run) is checked job by job, as run checks it.
Exit 0 when valid, 2 otherwise.`

// configPath is the -c/--config of args, or FERRY_CONFIG.
func configPath(args []string) (string, bool) {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "c" && name != "config") {
			continue
		}
		if hasVal {
			return val, true
		}
		if i+1 < len(args) {
			return args[i+1], true
		}
	}
	return os.LookupEnv("FERRY_CONFIG")
}

// checkBatch is config check for a batch file: the checks of ferry run, then
// each job as it will run.
func checkBatch(path string, extra bool, stdout io.Writer) error {
	if extra {
		return usageError{errors.New("config check: a batch file takes no job flags (its jobs are set in the file, as for ferry run)")}
	}
	b, err := conf.LoadBatch(path)
	if err != nil {
		return usageError{err}
	}
	for i, bj := range b.Jobs {
		if bj.Mode != conf.ModeVerify {
			if err := notBuilt(bj.Job, "job["+bj.Job.Name+"]."); err != nil {
				return err
			}
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "# [[job]] %s (mode %s)\n", bj.Job.Name, bj.Mode)
		fmt.Fprint(stdout, bj.Job.String())
	}
	return nil
}

// redisLogger is where go-redis's own log lines go (see main).
var redisLogger atomic.Pointer[zerolog.Logger]

type redisLog struct{}

func (redisLog) Printf(_ context.Context, format string, v ...any) {
	if l := redisLogger.Load(); l != nil {
		l.Debug().Msgf("go-redis: "+format, v...)
	}
}

// cutoverFlags are migrate's cutover options.
type cutoverFlags struct{ on, unpause, verify bool }

func (c cutoverFlags) check(jc conf.Job) error {
	switch {
	case !c.on && (c.unpause || c.verify):
		return usageError{errors.New("--unpause and --verify go with --cutover")}
	case c.on && jc.Import():
		return usageError{errors.New("--cutover needs a live source, not --rdb or --aof")}
	case !c.on && jc.CutoverHook != "":
		return usageError{errors.New("config: cutover_hook is set: run migrate with --cutover (or remove it)")}
	}
	return nil
}

// options builds the job's cutover; nil without --cutover.
func (c cutoverFlags) options(jc conf.Job, log zerolog.Logger, stdout io.Writer) *job.Cutover {
	if !c.on {
		return nil
	}
	co := &job.Cutover{PauseMax: jc.CutoverPauseMax, Hook: jc.CutoverHook, HookEnv: jc.CutoverHookEnv, HookTimeout: jc.CutoverHookTimeout, Unpause: c.unpause}
	co.Ready = func(r job.CutoverReport) {
		until := "until " + r.Until.Format(time.TimeOnly)
		if c.unpause {
			until = "until ferry ends"
		}
		fmt.Fprintf(stdout, "cutover ready: the target holds every write of the paused source (waited %s); source paused %s\n",
			r.Wait.Round(time.Millisecond), until)
	}
	if c.verify {
		co.Verify = func(ctx context.Context) error {
			res, err := runVerify(ctx, jc, verify.Options{}, log)
			if err != nil {
				return err
			}
			if !res.Equal() {
				return fmt.Errorf("source and target differ after the cutover: %d differences", len(res.Diffs))
			}
			fmt.Fprintf(stdout, "verified: %d keys equal\n", res.Compared)
			return nil
		}
	}
	return co
}
