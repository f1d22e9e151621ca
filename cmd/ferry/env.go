package main

// Configuration from the environment. Every long flag of every subcommand
// has a variable: --foo-bar is FERRY_FOO_BAR. Precedence: a flag on the
// command line, then its variable, then the config file, then the default.
// The variable is applied to the flag set itself (as if it were given as a
// flag), so a command reads its flags the same way wherever a value came
// from, and a flag added later gets its variable without more code.

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// envPrefix starts every variable ferry reads for its flags.
const envPrefix = "FERRY_"

// lookupEnv is how the CLI reads the environment: os.LookupEnv.
type lookupEnv func(string) (string, bool)

// envName is the variable of a flag: --source-password-file is
// FERRY_SOURCE_PASSWORD_FILE.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envFlag reports whether a flag has a variable. One-letter flags are
// short forms of a long flag (-c of --config), which has the variable.
func envFlag(name string) bool { return len(name) > 1 }

// argFlags returns the flags set on the command line (after fs.Parse).
func argFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// applyEnv sets every flag of fs that the command line did not set (nor
// its short form, aliases[name]) from its variable. An empty variable counts
// as unset: container templates often render an unused setting as "".
// It returns the flags that came from the command line; a bad value is a
// usage error naming the variable (never quoting its value, which may be a
// secret).
func applyEnv(fs *flag.FlagSet, aliases map[string]string, lookup lookupEnv) (map[string]bool, error) {
	fromArgs := argFlags(fs)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || !envFlag(f.Name) || fromArgs[f.Name] || fromArgs[aliases[f.Name]] {
			return
		}
		v, ok := lookup(envName(f.Name))
		if !ok || v == "" {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			msg := e.Error()
			if strings.Contains(msg, v) {
				msg = "not accepted"
			}
			err = usageError{fmt.Errorf("%s: invalid value for --%s: %s", envName(f.Name), f.Name, msg)}
		}
	})
	return fromArgs, err
}

// envOnly are variables that have no flag: secrets, which would be visible
// to every user of the host in a command line.
var envOnly = []struct{ name, usage string }{
	{"FERRY_SOURCE_PASSWORD", "the source's password (over the file's password; below --source-password-file)"},
	{"FERRY_TARGET_PASSWORD", "the target's password (over the file's password; below --target-password-file)"},
}

// printFlags writes the flags of fs with their variables, in the layout of
// flag.PrintDefaults; when withSecrets, the variables without a flag too.
func printFlags(w io.Writer, fs *flag.FlagSet, withSecrets bool) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if len(f.Name) > 1 {
			line = "  --" + f.Name
		}
		if typ != "" {
			line += " " + typ
		}
		if !isZeroDefault(f) {
			usage += fmt.Sprintf(" (default %q)", f.DefValue)
		}
		if envFlag(f.Name) {
			usage += " [$" + envName(f.Name) + "]"
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
	if withSecrets {
		fmt.Fprintf(w, "\nEnvironment only (no flag: a command line is visible to other users of the host):\n")
		for _, e := range envOnly {
			fmt.Fprintf(w, "  $%s\n    \t%s\n", e.name, e.usage)
		}
	}
	fmt.Fprintf(w, "\nEvery flag can be given as its FERRY_ variable; a flag on the command line wins over\nthe variable, which wins over the config file. Empty variables are ignored.\n")
}

// isZeroDefault reports whether a flag's default is not worth printing.
func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return true
	}
	return false
}

// anyEnv reports whether the variable of some flag of fs is set.
func anyEnv(fs *flag.FlagSet, lookup lookupEnv) bool {
	found := false
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := lookup(envName(f.Name)); ok && v != "" && envFlag(f.Name) {
			found = true
		}
	})
	return found
}
