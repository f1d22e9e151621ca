package job

import (
	"time"

	"github.com/ferry-dev/ferry/status"
)

// Status maps a job's state to what the status server shows.
func (s State) Status(name, mode string) status.Job {
	out := status.Job{
		Name:            name,
		Mode:            mode,
		Phase:           s.Phase,
		StartedAt:       s.StartedAt,
		KeysWritten:     s.Keys,
		KeysExpired:     s.Expired,
		KeysEmpty:       s.Empty,
		KeysSwept:       s.Swept,
		CommandsApplied: s.Commands,
		// Writers add their skips (see status.Job.Dropped).
		Dropped: map[string]int64{"field_ttl": s.FieldTTLs, "function": s.Functions, "module": s.Modules},

		RestartingSeconds: s.Restarting.Seconds(),
	}
	if s.Restarting > 0 {
		out.LastError = s.RestartError
	}
	if l := s.Lease; l != nil {
		out.Lease = &status.Lease{Owner: l.Owner.ID, Host: l.Owner.Host, PID: l.Owner.PID, Epoch: l.Epoch, RenewedAt: l.Renewed}
	}
	for _, sh := range s.Shards {
		r := sh.Reader
		out.Shards = append(out.Shards, status.Shard{
			Name:             sh.Name,
			Addr:             sh.Addr,
			Phase:            status.Phase(r.Phase),
			ReplID:           r.ReplID,
			Reader:           r.Mode,
			ReceivedOffset:   r.Received,
			AppliedOffset:    sh.AppliedOffset,
			LagBytes:         sh.LagBytes,
			LagSeconds:       sh.LagSeconds,
			RDBBytesTotal:    r.RDBSize,
			RDBBytesReceived: r.RDBReceived,
			RDBBytesApplied:  s.RDBParsed,
			SourceKeys:       sh.ExpectKeys,
			FullSyncs:        r.FullSyncs,
			PartialSyncs:     r.PartialSyncs,
			Reconnects:       r.Reconnects,
			SpoolMemoryBytes: sh.Spool.InMemory,
			SpoolDiskBytes:   sh.Spool.OnDisk,
			Rescans:          r.Rescans,
			RereadQueue:      r.Queue,
			ScanKeys:         r.ScanKeys,
			ScanKeysTotal:    r.ScanTotal,
			BigValues:        r.BigValues,
			LastError:        r.LastError,
			DisconnectedSeconds: func() float64 {
				if r.DownSince.IsZero() {
					return 0
				}
				return time.Since(r.DownSince).Seconds()
			}(),
		})
	}
	for _, w := range s.Writers {
		st := w.Stats
		out.Writers = append(out.Writers, status.Writer{
			Name:                     w.Name,
			Addr:                     w.Addr,
			Connected:                st.Connected,
			DisconnectedSeconds:      st.Down.Seconds(),
			Reconnects:               st.Reconnects,
			Batches:                  st.Batches,
			Ops:                      st.Ops,
			Bytes:                    st.Bytes,
			Skipped:                  st.Skipped,
			Pings:                    st.Pings,
			InflightBytes:            st.Inflight,
			QueuedBytes:              st.Queued,
			ConnAgeSeconds:           st.ConnAge.Seconds(),
			KeepaliveIntervalSeconds: st.KeepaliveEvery.Seconds(),
			AppliedReplID:            w.Applied.ReplID,
			AppliedOffset:            w.Applied.Offset,
			AppliedState:             string(w.Applied.State),
			LastError:                st.LastError,
		})
	}
	return out
}
