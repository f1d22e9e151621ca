package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/conf/shake"
)

const configImportUsage = "usage: ferry config import [-o FILE] shake.toml"

// cmdConfigImport translates a RedisShake v4 configuration into a ferry job
// file: the file on stdout (or -o FILE), one note per key it could not
// translate on stderr. Exit 0 when translated, 2 when the input is not a
// usable RedisShake configuration.
func cmdConfigImport(args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("ferry config import", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	out := fl.String("o", "", "write the job file here (mode 0600) instead of stdout")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: ferry config import [-o FILE] shake.toml\n\nTranslate a RedisShake v4 configuration (sync/scan/rdb/aof readers, redis writer,\nfilter, advanced) into a ferry job file, and say on stderr what it could not\ntranslate. Passwords are not copied: the file reads FERRY_SOURCE_PASSWORD and\nFERRY_TARGET_PASSWORD.\n")
			return nil
		}
		return usageError{fmt.Errorf("config import: %v (%s)", err, configImportUsage)}
	}
	if fl.NArg() != 1 {
		return usageError{errors.New("config import: one RedisShake file (" + configImportUsage + ")")}
	}
	path := fl.Arg(0)
	data, err := os.ReadFile(path)
	if err != nil {
		return usageError{fmt.Errorf("config import: %w", err)}
	}
	res, err := shake.Translate(data, path)
	if err != nil {
		return usageError{fmt.Errorf("config import: %w", err)}
	}
	// The job file must pass config check. Its passwords are variables
	// that need not be set yet.
	check := strings.NewReplacer("${FERRY_SOURCE_PASSWORD}", "x", "${FERRY_TARGET_PASSWORD}", "x").Replace(res.Job)
	j, err := conf.ParseJob([]byte(check), path)
	if err == nil {
		j.Mode = conf.ModeSync
		err = j.Validate()
	}
	var ce *conf.Error
	if errors.As(err, &ce) && (ce.Field == "rdb" || ce.Field == "aof") && errors.Is(err, fs.ErrNotExist) {
		// The file is on the machine that will run the job.
		res.Notes = append(res.Notes, fmt.Sprintf("%s: %s is not on this machine: config check reads it where the job runs", ce.Field, j.RDB+j.AOF))
		err = nil
	}
	if err != nil {
		return usageError{fmt.Errorf("config import: the translation does not pass config check (%v)", err)}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "ferry: config import: note: %s\n", n)
	}
	if *out == "" {
		_, err := io.WriteString(stdout, res.Job)
		return err
	}
	if err := os.WriteFile(*out, []byte(res.Job), 0o600); err != nil {
		return fmt.Errorf("config import: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: check it with ferry config check -c %s\n", *out, *out)
	return nil
}
