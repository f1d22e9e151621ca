package reader

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Auto reads a source with PSYNC and, when the source refuses replication
// (PSYNC or REPLCONF unknown, renamed or forbidden: managed services), with
// a Scan reader instead.
type Auto struct {
	ps   *PSync
	sc   *Scan
	log  zerolog.Logger
	scan atomic.Bool
}

// NewAuto combines a PSync reader and the Scan reader to fall back to; both
// write to the same spool (a refused PSYNC wrote nothing to it).
func NewAuto(ps *PSync, sc *Scan, log zerolog.Logger) *Auto {
	return &Auto{ps: ps, sc: sc, log: log}
}

// Run runs the PSync reader, and the Scan reader if the source refuses
// replication before any data came.
func (a *Auto) Run(ctx context.Context, start Start) error {
	err := a.ps.Run(ctx, start)
	var fe *FatalError
	if st := a.ps.Stats(); !errors.As(err, &fe) || !fe.Refused || st.FullSyncs+st.PartialSyncs > 0 {
		return err
	}
	a.log.Warn().Str("reason", fe.Err.Error()).Msg("the source refuses replication: reading it with SCAN + DUMP and keyspace notifications instead (reader = \"auto\")")
	a.scan.Store(true)
	serr := a.sc.Run(ctx, start)
	if errors.As(serr, &fe) && a.sc.Stats().FullSyncs == 0 {
		// Neither way works: say both, the PSYNC refusal first (with
		// reader = "auto" it is what the user meant to use).
		return &FatalError{Err: fmt.Errorf("%w; reading it by scanning instead failed too: %w", err, serr)}
	}
	return serr
}

// Stats are the active reader's.
func (a *Auto) Stats() Stats {
	if a.scan.Load() {
		return a.sc.Stats()
	}
	return a.ps.Stats()
}

// AckNow forwards to the PSync reader.
func (a *Auto) AckNow() { a.ps.AckNow() }

// Barrier is the Scan reader's (see Scan.Barrier); only meaningful once
// Stats().Mode is "scan".
func (a *Auto) Barrier(ctx context.Context) (int64, error) { return a.sc.Barrier(ctx) }
