package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/job"
	"github.com/ferry-dev/ferry/status"
)

// applyAOF applies --aof: like --rdb, it replaces a live source (and an
// rdb of the file), and --source or --rdb replace an aof of the file.
func (f *jobFlags) applyAOF(j *conf.Job) {
	switch {
	case f.aof != "":
		j.AOF, j.RDB = f.aof, ""
		if f.source == "" {
			j.Source = conf.Endpoint{}
		}
	case f.source != "" || f.rdb != "":
		j.AOF = ""
	}
}

// aofSummary is the last line of an AOF import.
func aofSummary(sum job.Summary) string {
	secs := sum.Elapsed.Seconds()
	s := "imported "
	if sum.RDBBytes > 0 { // the AOF's base is an RDB
		s += fmt.Sprintf("%d keys (%s of RDB) and ", sum.Keys, status.Bytes(sum.RDBBytes))
	}
	s += fmt.Sprintf("%d commands from the AOF in %.1f s%s", sum.Commands, secs, emptyNote(sum)+skippedNote(sum)+fieldTTLNote(sum))
	if tr := sum.AOFTruncated; tr != nil {
		s += fmt.Sprintf("; warning: %s was cut off at offset %d: the last %d bytes were left out, as redis-server does with aof-load-truncated yes",
			tr.File, tr.Offset, tr.Size-tr.Offset)
	}
	return s + "\n"
}

// emptyNote tells how many empty collections an import skipped.
func emptyNote(sum job.Summary) string {
	if sum.Empty == 0 {
		return ""
	}
	return fmt.Sprintf("; %d empty collections skipped, as redis-server skips them", sum.Empty)
}

// skippedNote tells how many writes on_error = skip dropped: each is a write
// the target does not hold, so the summary never leaves it out.
func skippedNote(sum job.Summary) string {
	if sum.Skipped == 0 {
		return ""
	}
	return fmt.Sprintf("; %d commands refused by the target and skipped (on_error = skip)", sum.Skipped)
}

// fieldTTLNote tells what on_unsupported = drop left out: hash field TTLs,
// function libraries, module values.
func fieldTTLNote(sum job.Summary) string {
	s := ""
	if sum.FieldTTLs > 0 {
		s += fmt.Sprintf("; %d hash field TTLs dropped: the target cannot hold them (on_unsupported = drop)", sum.FieldTTLs)
	}
	if sum.Functions > 0 {
		s += fmt.Sprintf("; %d function libraries dropped: the target cannot hold them (on_unsupported = drop)", sum.Functions)
	}
	if sum.Modules > 0 {
		s += fmt.Sprintf("; %d module values dropped: the target cannot hold them (on_unsupported = drop)", sum.Modules)
	}
	return s
}

// missingAOF is missingRDB for the aof setting.
func missingAOF(err error) *fs.PathError {
	var ce *conf.Error
	var pe *fs.PathError
	if errors.As(err, &ce) && ce.Field == "aof" && errors.As(err, &pe) &&
		(errors.Is(pe, fs.ErrNotExist) || errors.Is(pe, fs.ErrPermission)) {
		return pe
	}
	return nil
}
