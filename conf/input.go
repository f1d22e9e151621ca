package conf

import "os"

// Import reports whether the job imports a file (rdb or aof) instead of
// reading a live source.
func (j Job) Import() bool { return j.RDB != "" || j.AOF != "" }

// checkAOF validates aof: an appendonlydir (or its manifest) or one AOF
// file, instead of a live source or an RDB file.
func (j *Job) checkAOF(src bool) error {
	if j.AOF == "" {
		return nil
	}
	switch {
	case j.Mode == ModeVerify:
		return errf("aof", "not used by verify, which compares a live source with the target")
	case j.RDB != "":
		return errf("aof", "aof and rdb exclude each other: import one file")
	case src:
		return errf("aof", "aof and source exclude each other: import a file or read a live source, not both")
	}
	if _, err := os.Stat(j.AOF); err != nil {
		return &Error{Field: "aof", Msg: err.Error(), Err: err}
	}
	return nil
}
