package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ferry-dev/ferry/conf/shake"
)

const configImportSummary = `Translate a RedisShake v4 config (shake.toml) into a ferry job file, printed on
stdout or written to -o FILE. Each line of the job file names the RedisShake key
it comes from. What has no ferry equivalent (the Lua function, command groups,
aws_psync, ncpu, log_file, ...) is said on stderr, one line each, with what to do
instead. Passwords are not copied: the job file reads $FERRY_SOURCE_PASSWORD and
$FERRY_TARGET_PASSWORD (a ${VAR} reference in shake.toml is kept). Check the
result with 'ferry config check -c FILE'.
Exit 0 when translated (also with notes), 2 when the file cannot be read or is
not a RedisShake v4 config.`

const configImportFlags = `  -o FILE, --output FILE
    	file to write the job file to instead of stdout (mode 0600; not the input file)
`

// cmdConfigImport is ferry config import [-o FILE] SHAKE.toml.
func cmdConfigImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ferry config import", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var output string
	fs.StringVar(&output, "o", "", "write the job file here instead of stdout (mode 0600; not the input file)")
	fs.StringVar(&output, "output", "", "same as -o")
	// Flags may come before or after the file name.
	var inputs []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(stdout, "Usage: ferry config import [-o FILE] SHAKE.toml\n\n%s\n\nFlags:\n%s", configImportSummary, configImportFlags)
				return err
			}
			return usageError{fmt.Errorf("config import: %v (see 'ferry config import --help')", err)}
		}
		if fs.NArg() == 0 {
			break
		}
		inputs = append(inputs, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch len(inputs) {
	case 0:
		return usageError{errors.New("config import: no file given (usage: ferry config import [-o FILE] SHAKE.toml)")}
	case 1:
	default:
		return usageError{fmt.Errorf("config import: one file at a time, not %d", len(inputs))}
	}
	in := inputs[0]
	data, err := readLimited(in, shake.MaxFileSize)
	if err != nil {
		return usageError{fmt.Errorf("config import: %w", err)}
	}
	res, err := shake.Translate(data, in)
	if err != nil {
		return usageError{fmt.Errorf("config import: %w", err)}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "ferry: warning: %s\n", oneLine(n.String()))
	}
	if output == "" {
		_, err := stdout.Write(res.TOML)
		return err
	}
	if same(in, output) {
		return usageError{fmt.Errorf("config import: -o %s is the input file: write the job file elsewhere", output)}
	}
	if err := os.WriteFile(output, res.TOML, 0o600); err != nil {
		return fmt.Errorf("config import: %w", err)
	}
	return nil
}

// readLimited reads the file at path, refusing one larger than limit
// without reading past it.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a RedisShake config", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes: not a RedisShake config", path, limit)
	}
	return data, nil
}

// same reports whether a and b name the same existing file.
func same(a, b string) bool {
	if strings.TrimSpace(a) == strings.TrimSpace(b) {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
