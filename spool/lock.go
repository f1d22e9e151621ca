package spool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// File naming: ferry-spool-<id>.lock and ferry-spool-<id>-<seq>.seg, id being
// 16 hex digits chosen at random by each Spool. The lock file is created
// before any segment and removed after all of them; the owner holds an
// exclusive flock on it for its whole life, so "lock file missing or not
// locked" means "owner gone".
const filePrefix = "ferry-spool-"

// parseName returns the owner id of a spool file name and whether it is a
// lock file; ok is false for any other name.
func parseName(name string) (id string, isLock, ok bool) {
	rest, found := strings.CutPrefix(name, filePrefix)
	if !found || len(rest) < 16 || !isHex(rest[:16]) {
		return "", false, false
	}
	id, rest = rest[:16], rest[16:]
	if rest == ".lock" {
		return id, true, true
	}
	seq, found := strings.CutPrefix(rest, "-")
	if !found {
		return "", false, false
	}
	seq, found = strings.CutSuffix(seq, ".seg")
	if !found || seq == "" || strings.Trim(seq, "0123456789") != "" {
		return "", false, false
	}
	return id, false, true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func lockPath(dir, id string) string { return filepath.Join(dir, filePrefix+id+".lock") }

// removeLeftovers deletes the files of spools in dir whose owner is gone.
func removeLeftovers(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("spool: scan %s: %w", dir, err)
	}
	segs := map[string][]string{} // owner id -> segment names
	for _, e := range entries {
		id, isLock, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if !isLock {
			segs[id] = append(segs[id], e.Name())
		} else if _, seen := segs[id]; !seen {
			segs[id] = nil
		}
	}
	var errs []error
	for id, names := range segs {
		if err := reapOwner(dir, id, names); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reapOwner removes the named segments and the lock file of owner id unless
// the owner is alive (holds its lock). The lock file is checked after the
// directory listing; since an owner creates its lock file before its first
// segment and removes it after its last, a listed segment whose lock file is
// missing (or not locked) is a leftover.
func reapOwner(dir, id string, names []string) error {
	lp := lockPath(dir, id)
	lf, err := os.OpenFile(lp, os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		lf = nil
	case err != nil:
		return fmt.Errorf("spool: open leftover lock %s: %w", lp, err)
	default:
		defer lf.Close()
		locked, err := tryLock(lf)
		if err != nil {
			return fmt.Errorf("spool: lock %s: %w", lp, err)
		}
		if !locked {
			return nil // alive
		}
	}
	var errs []error
	for _, name := range names {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("spool: remove leftover %s: %w", name, err))
		}
	}
	if lf != nil {
		if err := os.Remove(lp); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("spool: remove leftover %s: %w", lp, err))
		}
	}
	return errors.Join(errs...)
}

// createLock creates and locks a lock file under a fresh id. Between creating
// the file and locking it, a concurrent New may take it for a leftover and
// remove it; that is detected (lock busy, or the path no longer names our
// file) and a new id is tried.
func createLock(dir string) (prefix string, lock *os.File, err error) {
	for range 8 {
		id := fmt.Sprintf("%016x", rand.Uint64())
		lp := lockPath(dir, id)
		f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("spool: create lock %s: %w", lp, err)
		}
		locked, err := tryLock(f)
		if err != nil {
			f.Close()
			os.Remove(lp)
			return "", nil, fmt.Errorf("spool: lock %s: %w", lp, err)
		}
		if locked && samePath(f, lp) {
			return filePrefix + id, f, nil
		}
		f.Close()
	}
	return "", nil, fmt.Errorf("spool: could not create a lock file in %s", dir)
}

func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// releaseLock closes the lock file, which drops the lock, and removes it.
func releaseLock(f *os.File) error {
	var errs []error
	if err := f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("spool: close lock %s: %w", f.Name(), err))
	}
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("spool: remove lock %s: %w", f.Name(), err))
	}
	return errors.Join(errs...)
}
