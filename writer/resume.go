// Resuming on a new connection: which groups in flight the target applied
// (read from its markers), what goes back to the queue, and the ledger of
// what was acknowledged.

package writer

import (
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dev/ferry/resp"
)

// readMarkers reads the given marker keys in one round trip.
func readMarkers(c *resp.Conn, keys []string) (map[string]Position, error) {
	c.SetDeadline(time.Now().Add(c.Timeout))
	defer c.SetDeadline(time.Time{})
	for _, k := range keys {
		if _, err := c.W.Write(resp.AppendCommandStrings(nil, "GET", k)); err != nil {
			return nil, err
		}
	}
	if err := c.W.Flush(); err != nil {
		return nil, err
	}
	out := make(map[string]Position, len(keys))
	var firstErr error
	for _, k := range keys {
		v, err := c.R.ReadValue()
		if err != nil {
			return nil, err
		}
		switch {
		case v.IsError():
			if firstErr == nil {
				firstErr = &resp.ReplyError{Cmd: "GET", Msg: string(v.Str)}
			}
		case !v.Null:
			p, err := ParsePosition(string(v.Str))
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", k, err)
				}
				continue
			}
			out[k] = p
		}
	}
	return out, firstErr
}

// resume asks the target which of the groups in flight it applied, puts the
// rest back at the head of the queue, and checks that the target still holds
// everything it acknowledged before.
func (w *Writer) resume(c *resp.Conn) error {
	w.qmu.Lock()
	keys := make([]string, 0, len(w.acked)+8)
	seen := map[string]bool{}
	add := func(k string) {
		if k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for k := range w.acked {
		add(k)
	}
	for _, f := range w.inflight {
		for i := range f.groups {
			add(f.groups[i].marker)
		}
	}
	w.qmu.Unlock()

	markers, err := readMarkers(c, keys)
	if err != nil {
		var re *resp.ReplyError
		if errors.As(err, &re) && (re.Prefix() == "MOVED" || re.Prefix() == "ASK") {
			// A marker's slot moved away: the topology changed under us. The
			// groups in flight for it come back as redirected below.
			markers = map[string]Position{}
		} else {
			return classify(w.Addr(), err)
		}
	}

	w.qmu.Lock()
	defer w.qmu.Unlock()
	for k, seq := range w.acked {
		p, found := markers[k]
		if !found && w.cfg.Slotted {
			// A slot can leave this master (resharding) with its marker; the
			// job notices through MOVED, not here.
			continue
		}
		if !found || p.Seq < seq {
			return &RewoundError{Key: k, Found: found, Marker: p, Acked: seq, Endpoint: w.Addr()}
		}
	}

	// Groups were applied in the order they were sent: find the prefix.
	appliedOps := map[*Batch]map[int]bool{}
	done := true
	nApplied, nBack := 0, 0
	for _, f := range w.inflight {
		for i := range f.groups {
			g := &f.groups[i]
			if done && g.status == statusPending {
				if p, ok := markers[g.marker]; ok && p.Seq >= g.seq && g.seq > 0 {
					g.status = statusApplied
				} else {
					done = false
				}
			}
			switch g.status {
			case statusApplied:
				nApplied++
				w.acked[g.marker] = max(w.acked[g.marker], g.seq)
				for _, o := range g.ops {
					b := f.batches[o.b]
					if appliedOps[b] == nil {
						appliedOps[b] = map[int]bool{}
					}
					appliedOps[b][int(o.i)] = true
				}
			case statusRedirected:
				// already taken out by the reply reader
			default:
				nBack++
			}
		}
	}
	var back []*Batch
	prefix := true
	for _, f := range w.inflight {
		for _, b := range f.batches {
			drop := appliedOps[b]
			red := f.redirectedOps[b]
			if prefix && len(drop)+len(red) == b.Len() {
				w.ackBatchLocked(b)
				continue
			}
			prefix = false
			nb := b.without(func(i int) bool { return drop[i] || red[i] })
			if w.injected[b] {
				delete(w.injected, b)
				w.injected[nb] = true
			}
			b.Release()
			back = append(back, nb)
			w.queuedBytes += int64(nb.Size())
		}
	}
	w.inflight = w.inflight[:0]
	w.inflightBytes = 0
	w.queue = append(back, w.queue...)
	if nApplied > 0 || nBack > 0 {
		w.log.Info().Int("groups_found_applied", nApplied).Int("groups_replayed", nBack).Msg("resumed from the target's markers")
	}
	w.cond.Broadcast()
	return nil
}

// ackBatchLocked records that every command of b is applied.
func (w *Writer) ackBatchLocked(b *Batch) {
	if !w.injected[b] {
		w.applied[b.Stream] = b.Pos
	}
	delete(w.injected, b)
	if !w.cfg.Slotted {
		key := b.markerOr(w.cfg.MarkerKey)
		w.acked[key] = max(w.acked[key], b.Pos.Seq)
		w.streamKey[b.Stream] = key
	}
	w.batches.Add(1)
	w.ops.Add(int64(b.Len()))
	w.bytes.Add(int64(b.Size()))
	b.Release()
}
