package reader

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/resp"
)

// Changes no notification reports. SWAPDB publishes no keyspace
// notification and sends no tracking invalidation; FUNCTION LOAD, DELETE,
// FLUSH and RESTORE publish nothing either; a FLUSHDB/FLUSHALL is seen
// through client tracking only where the source allows it. Each of them
// counts in INFO commandstats (on a replica too, for what it applies from
// its master), so the reader compares those counts with the ones it took
// when its pass began: every cmdStatsEvery, and before answering a barrier
// (so a cutover or caught-up sees a SWAPDB made just before it). A SWAPDB
// (or, without tracking, a flush) makes a new pass, whose sweep deletes
// what the target no longer should hold; a function change sends the
// source's libraries again as FUNCTION RESTORE … FLUSH. Any other change of
// a count (CONFIG RESETSTAT puts them back to 0) is taken as a change too.

// cmdStatsEvery is how often the counts are read: one INFO commandstats (a
// few KB) a second per master.
const cmdStatsEvery = time.Second

var (
	swapCmds  = []string{"swapdb"}
	flushCmds = []string{"flushall", "flushdb"}
	funcCmds  = []string{"function|load", "function|delete", "function|flush", "function|restore"}
)

// cmdStats reads the calls of the commands watched; ok is false when the
// source refuses INFO commandstats (said once).
func (s *Scan) cmdStats(c *resp.Conn) (counts map[string]int64, ok bool, err error) {
	if s.noCmdStats {
		return nil, false, nil
	}
	v, err := c.Do("INFO", "commandstats")
	if err != nil {
		var re *resp.ReplyError
		if errors.As(err, &re) {
			s.noCmdStats = true
			s.cfg.Log.Warn().Err(err).Msg("the source refuses INFO commandstats: a SWAPDB or a change of function libraries on it cannot be seen by the scan reader")
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("source %s: INFO commandstats: %w", s.cfg.Dial.Addr, err)
	}
	counts = map[string]int64{}
	for _, line := range strings.Split(string(v.Str), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		if n, ok := strings.CutPrefix(calls, "calls="); ok {
			counts[name], _ = strconv.ParseInt(n, 10, 64)
		}
	}
	return counts, true, nil
}

// baseCmdStats takes the counts a pass starts from.
func (s *Scan) baseCmdStats(c *resp.Conn) error {
	counts, ok, err := s.cmdStats(c)
	if err != nil {
		return err
	}
	if ok {
		s.cmdBase = counts
	}
	return nil
}

// checkCmdStats compares the counts with the base: it returns why a new
// pass is needed, or sends the function libraries again when they changed.
func (s *Scan) checkCmdStats(c *resp.Conn) (string, error) {
	if s.cmdBase == nil {
		return "", nil
	}
	counts, ok, err := s.cmdStats(c)
	if err != nil || !ok {
		return "", err
	}
	changed := func(names []string) bool {
		for _, n := range names {
			if counts[n] != s.cmdBase[n] {
				return true
			}
		}
		return false
	}
	// Libraries first: a new pass copies them too, but as a snapshot does,
	// without deleting the target's others.
	if changed(funcCmds) {
		if err := s.sendFunctions(c); err != nil {
			return "", err
		}
	}
	switch {
	case changed(swapCmds):
		return "SWAPDB on the source (INFO commandstats)", nil
	case s.noTracking && changed(flushCmds):
		return "FLUSHDB/FLUSHALL on the source (INFO commandstats)", nil
	}
	s.cmdBase = counts
	return "", nil
}

// sendFunctions writes the source's function libraries into the stream:
// FUNCTION RESTORE … FLUSH replaces the target's libraries with them at
// once; FUNCTION FLUSH when the source has none left.
func (s *Scan) sendFunctions(c *resp.Conn) error {
	if s.noFunctions {
		return nil
	}
	v, err := c.Do("FUNCTION", "DUMP")
	if err != nil {
		return replyErr(s.cfg.Dial.Addr, "FUNCTION DUMP", err)
	}
	var buf []byte
	if !v.Null && len(v.Str) > dumpFooter {
		buf = resp.AppendCommand(buf, []byte("FUNCTION"), []byte("RESTORE"), v.Str, []byte("FLUSH"))
	} else {
		buf = resp.AppendCommandStrings(buf, "FUNCTION", "FLUSH")
	}
	s.cfg.Log.Info().Msg("function libraries changed on the source: sent again")
	err = s.fo.stream(buf)
	s.offset += int64(len(buf))
	return err
}
