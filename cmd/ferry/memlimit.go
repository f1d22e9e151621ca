package main

import (
	"os"
	"runtime/debug"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
)

// Memory: what a job holds is bounded by its settings (see the README's
// "Memory" section), but Go's collector lets the heap grow to about twice
// what is live before it runs. A soft limit derived from the same settings
// makes the collector work harder as the process nears the bound instead of
// letting it double: peak RSS stays near what the settings promise, at some
// CPU when the bound is near. GOMEMLIMIT, when set, is the operator's and
// wins.

const (
	memBase        = 64 << 20 // runtime, buffers, go-redis pools, status server
	memRecord      = 32 << 20 // the snapshot record being applied (bigger ones spill)
	memWriters     = 4        // writers budgeted for: a 3-master cluster and one spare
	memWriterQueue = 8 << 20  // a writer's queue (target.Config.writerConfig; 32 MiB on a cluster)
	// memOutside is what RSS counts and the runtime's limit does not: the
	// program's own pages (the binary is ~15 MiB), goroutine stacks, spans
	// partly in use. Measured, peak RSS ran 15–26 MiB above the heap's
	// peak (26 on a 1M-key cluster-to-cluster migrate, three streams and
	// three writers), so the limit is set that much under the bound.
	memOutside = 32 << 20
)

// jobMemory is the memory one job's settings bound: its spool's memory (an
// import of a file has no spool), its writers' queues and in-flight bytes,
// the record being applied, a base.
func jobMemory(j conf.Job) int64 {
	queue := max(int64(memWriterQueue), 2*j.BatchMaxBytes)
	spool := j.SpoolMemory
	if j.Import() {
		spool = 0
	}
	return memBase + spool + memRecord + memWriters*(queue+j.MaxInflightBytes)
}

// setMemoryLimit sets the process's soft memory limit to the sum of the
// bounds of the jobs that run at once less memOutside, unless GOMEMLIMIT is
// set, and logs what it chose. It returns the limit in force.
func setMemoryLimit(log zerolog.Logger, jobs ...conf.Job) int64 {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		limit := debug.SetMemoryLimit(-1)
		log.Debug().Int64("limit_bytes", limit).Msg("memory: soft limit from GOMEMLIMIT")
		return limit
	}
	var limit int64
	for _, j := range jobs {
		limit += jobMemory(j)
	}
	if limit <= memOutside {
		return debug.SetMemoryLimit(-1)
	}
	limit -= memOutside
	debug.SetMemoryLimit(limit)
	log.Debug().Int64("limit_bytes", limit).Msg("memory: soft limit from the settings (GOMEMLIMIT overrides)")
	return limit
}
