// Command ferry moves the data of one Redis deployment into another and keeps
// it in sync.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"ferry/conf"
	"ferry/job"
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
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const topUsage = `ferry moves the data of one Redis deployment into another and keeps it in sync.

Usage:
  ferry <command> [flags]

Commands:
  sync      copy the source to the target, then follow its writes until stopped
  migrate   like sync, but exit once the target has caught up with the source
  config    config check -c FILE: validate a config file and print it, secrets redacted
  version   print the version

Run 'ferry <command> --help' for a command's flags. Configuration reference:
the README and conf/example.toml.

Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return exitOK
	case "version", "--version":
		fmt.Fprintf(stdout, "ferry %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "sync":
		err = cmdSync(args[1:], stdout, stderr, false)
	case "migrate":
		err = cmdSync(args[1:], stdout, stderr, true)
	case "config":
		err = cmdConfig(args[1:], stdout, stderr)
	default:
		err = usageError{fmt.Errorf("unknown command %q (see 'ferry --help')", args[0])}
	}
	return report(err, stderr)
}

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
	config              string
	source, target, rdb string
	jobName             string
	logLevel, logFormat string
}

func newJobFlags(name, summary string, stderr io.Writer) *jobFlags {
	f := &jobFlags{fs: flag.NewFlagSet("ferry "+name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.config, "c", "", "config file (TOML)")
	f.fs.StringVar(&f.config, "config", "", "config file (TOML)")
	f.fs.StringVar(&f.source, "source", "", "source address: redis://[user:pass@]host:port, rediss://…, sentinel://host:port/name (overrides the file)")
	f.fs.StringVar(&f.target, "target", "", "target address (overrides the file)")
	f.fs.StringVar(&f.rdb, "rdb", "", "import this RDB file instead of reading a live source")
	f.fs.StringVar(&f.jobName, "job", "", "job name (overrides the file)")
	f.fs.StringVar(&f.logLevel, "log-level", "", "debug | info | warn | error")
	f.fs.StringVar(&f.logFormat, "log-format", "", "auto | console | json")
	f.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: ferry %s [-c FILE] [flags]\n\n%s\n\nFlags:\n", name, summary)
		f.fs.PrintDefaults()
	}
	return f
}

// load builds the job configuration: the file (if any), then the flags.
func (f *jobFlags) load(args []string, mode string) (conf.Job, error) {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return conf.Job{}, err
		}
		return conf.Job{}, usageError{err}
	}
	if f.fs.NArg() > 0 {
		return conf.Job{}, usageError{fmt.Errorf("unexpected argument %q", f.fs.Arg(0))}
	}
	j := conf.Default()
	if f.config != "" {
		var err error
		if j, err = conf.LoadJob(f.config); err != nil {
			return conf.Job{}, usageError{err}
		}
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
	if f.jobName != "" {
		j.Name = f.jobName
	}
	if f.logLevel != "" {
		j.LogLevel = f.logLevel
	}
	if f.logFormat != "" {
		j.LogFormat = f.logFormat
	}
	j.Mode = mode
	if err := j.Validate(); err != nil {
		return conf.Job{}, usageError{err}
	}
	return j, nil
}

func newLogger(j conf.Job, stderr io.Writer) zerolog.Logger {
	level, err := zerolog.ParseLevel(j.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	format := j.LogFormat
	if format == "" || format == "auto" {
		format = "json"
		if isTerminal(stderr) {
			format = "console"
		}
	}
	var w io.Writer = stderr
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly, NoColor: !isTerminal(stderr)}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("job", j.Name).Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func cmdSync(args []string, stdout, stderr io.Writer, migrate bool) error {
	name, summary := "sync", "Copy the source (or an RDB file) to the target, then follow the source's writes until SIGINT/SIGTERM."
	if migrate {
		name, summary = "migrate", "Copy the source to the target and exit 0 once the target has applied every write the source had when the snapshot was applied."
	}
	f := newJobFlags(name, summary, stderr)
	jc, err := f.load(args, name)
	if err != nil {
		return err
	}
	log := newLogger(jc, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()

	sum, err := job.Run(ctx, job.Options{Conf: jc, Migrate: migrate, Log: log})
	if err != nil {
		return err
	}
	secs := sum.Elapsed.Seconds()
	switch {
	case jc.RDB != "":
		fmt.Fprintf(stdout, "imported %d keys (%s of RDB) in %.1f s: %.0f keys/s\n",
			sum.Keys, human(sum.RDBBytes), secs, float64(sum.Keys)/max(secs, 1e-3))
	case migrate:
		fmt.Fprintf(stdout, "migrated %d keys and %d commands in %.1f s; target caught up at offset %d (lag %d bytes)\n",
			sum.Keys, sum.Commands, secs, sum.Applied.Offset, sum.Lag)
	default:
		fmt.Fprintf(stdout, "stopped after %.1f s: %d keys, %d commands applied; resume point %s:%d saved on the target\n",
			secs, sum.Keys, sum.Commands, sum.Applied.ReplID, sum.Applied.Offset)
	}
	return nil
}

func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return usageError{errors.New("usage: ferry config check -c FILE")}
	}
	f := newJobFlags("config check", "Validate a job's configuration and print it as ferry will use it, secrets redacted.", stderr)
	jc, err := f.load(args[1:], "")
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, jc.String())
	return nil
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
