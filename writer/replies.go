// Reading a flight's replies: each group applied, refused (one command,
// or the whole transaction), or redirected, and what that means for the
// writer.

package writer

import (
	"errors"
	"fmt"

	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/resp"
)

// feed accounts one reply to group g of f. It returns done once g is fully
// answered. A refusal does not end the reading: it halts the writer (see
// halt) and the replies of what was already sent are read on.
func (s *session) feed(f *flight, g *group, kind resp.Kind, msg string, execErrs map[int]string) (bool, error) {
	w := s.w
	g.got++
	if !g.multi {
		if kind == resp.Error {
			if item := g.items[g.got-1]; item == itemInternal && f.batches != nil && s.halted == nil && redirect(msg) {
				// The home slot left this master: the marker update is
				// lost (the group is not applied). Under ASK or TRYAGAIN
				// the slot is being migrated and a later update lands;
				// after MOVED none will, and the owner must be told.
				if w.cfg.OnMarkerMoved != nil && fault.Moved(msg) {
					w.cfg.OnMarkerMoved(msg)
				}
				return g.got == len(g.items), nil
			}
			if err := s.itemError(f, g, g.items[g.got-1], msg); err != nil {
				return false, err
			}
		}
		if g.got == len(g.items) {
			if g.status == statusPending {
				g.status = statusApplied
			}
			return true, nil
		}
		return false, nil
	}
	switch {
	case g.got == 1: // MULTI
		if kind == resp.Error {
			if s.halted == nil && transient(msg) {
				return false, fmt.Errorf("%s: will retry: %w", w.Addr(), &resp.ReplyError{Cmd: "MULTI", Msg: msg})
			}
			// The group's commands now run one by one, outside any
			// transaction: the target is at no source position.
			w.dirty = true
			s.halt(&FatalError{fmt.Errorf("target %s refused MULTI: %s", w.Addr(), msg)})
		}
		return false, nil
	case g.got <= len(g.items)+1: // +QUEUED or an error while queueing
		if kind == resp.Error {
			if g.queueErrs == nil {
				g.queueErrs = map[int]string{}
			}
			g.queueErrs[g.got-2] = msg
		}
		return false, nil
	}
	// EXEC
	if kind == resp.Error {
		return s.aborted(f, g, msg)
	}
	if msg == "null" {
		s.halt(&FatalError{fmt.Errorf("%s: EXEC returned no result", w.Addr())})
		return true, nil
	}
	g.status = statusApplied
	for i, m := range execErrs {
		if i >= len(g.items) {
			continue
		}
		var err error
		if g.items[i] < 0 {
			err = &FatalError{fmt.Errorf("target %s: ferry's marker write failed: %s", w.Addr(), m)}
		} else {
			err = s.opError(f, g, int(g.items[i]), m)
		}
		if err != nil {
			// The group ran without this command (or its marker).
			w.dirty = true
			s.halt(err)
		}
	}
	return true, nil
}

// itemError handles an error reply to one command of an unfenced group.
func (s *session) itemError(f *flight, g *group, item int32, msg string) error {
	w := s.w
	switch {
	case f.batches == nil: // a keepalive PING
		if s.halted != nil {
			return nil
		}
		return fmt.Errorf("%s: PING: %s", w.Addr(), msg)
	case s.halted != nil:
		// Past a refusal, whatever fails here leaves a hole.
		w.dirty = true
	case transient(msg):
		// Nothing is known applied past here; the markers sort it out
		// after the reconnect.
		return fmt.Errorf("%s: will retry: %w", w.Addr(), &resp.ReplyError{Cmd: "reply", Msg: msg})
	case redirect(msg) && item == itemInternal:
		// handled by feed
	case redirect(msg):
		s.redirectOps(f, g, []int{int(item)})
	case item == itemInternal:
		w.dirty = true
		s.halt(s.refusal(f, g, -1, msg))
	default:
		if err := s.opError(f, g, int(item), msg); err != nil {
			// The rest of the group runs without it.
			w.dirty = true
			s.halt(err)
		}
	}
	return nil
}

// aborted handles EXECABORT: nothing of the group ran.
func (s *session) aborted(f *flight, g *group, execMsg string) (bool, error) {
	w := s.w
	if s.halted != nil {
		return true, nil // not applied: complete sees the hole
	}
	first, firstMsg := -1, execMsg
	for i := 0; i < len(g.items); i++ {
		if m, ok := g.queueErrs[i]; ok {
			first, firstMsg = i, m
			break
		}
	}
	switch {
	case redirect(firstMsg):
		// The slot is elsewhere (or moving): the job routes these again.
		idx := make([]int, len(g.ops))
		for k := range idx {
			idx[k] = k
		}
		s.redirectOps(f, g, idx)
		return true, nil
	case transient(firstMsg):
		return false, fmt.Errorf("%s: transaction aborted, will retry: %w", w.Addr(), &resp.ReplyError{Cmd: "EXEC", Msg: firstMsg})
	}
	if w.skipFenced() && s.resend(f, g) {
		return true, nil
	}
	op := -1
	if first >= 0 {
		op = int(g.items[first])
	}
	s.halt(s.refusal(f, g, op, firstMsg))
	return true, nil
}

// resend handles a fenced group aborted because the target refused some of
// its commands while queueing, under on_error = skip: if nothing was sent
// after it, the group's batch goes back to the head of the queue without
// the refused commands, which are counted as skipped (and dropped from
// later batches before they are sent). false: it cannot be (a refused
// marker or SELECT, or later groups already ran), the refusal stands.
func (s *session) resend(f *flight, g *group) bool {
	if len(f.batches) != 1 || len(f.groups) != 1 {
		return false
	}
	drop := map[int]string{} // command of the batch → its refusal
	for i, msg := range g.queueErrs {
		if i >= len(g.items) || g.items[i] < 0 {
			return false // ferry's own SELECT or marker
		}
		drop[int(g.ops[g.items[i]].i)] = msg
	}
	if len(drop) == 0 {
		return false
	}
	return s.w.led.resend(f, drop)
}

// redirectOps takes commands of g out for routing again.
func (s *session) redirectOps(f *flight, g *group, idx []int) {
	w := s.w
	w.led.redirect(f, g, idx)
	w.redirects.Add(int64(len(idx)))
	if w.cfg.OnRedirect != nil {
		w.cfg.OnRedirect()
	}
}

// refusal is the error for a command the target refused while queueing it
// (unknown command, wrong arity, ACL, OOM…): its group did not run.
func (s *session) refusal(f *flight, g *group, op int, msg string) error {
	w := s.w
	what := "ferry's own command"
	if op >= 0 {
		at := g.ops[op]
		what = f.batches[at.b].Describe(int(at.i))
	}
	return refused(w.Addr(), what, msg)
}

// refused is the fatal error for a command the target refused: one line
// naming the server, the command, the reply and the fix.
func refused(addr, what, msg string) error {
	_, fix := fault.Reply(msg)
	return &FatalError{fault.PermanentErr("target "+addr, "refused "+what, fix, errors.New(msg))}
}

// opError applies the error policy to a command that failed while running.
func (s *session) opError(f *flight, g *group, op int, msg string) error {
	w := s.w
	at := g.ops[op]
	what := f.batches[at.b].Describe(int(at.i))
	if w.cfg.OnError == Skip {
		n := w.skipped.Add(1)
		if n <= 10 || n%1000 == 0 {
			w.log.Warn().Str("command", what).Str("error", msg).Int64("skipped_total", n).Msg("target refused a command; skipped (on_error = skip)")
		}
		return nil
	}
	return refused(w.Addr(), what, msg)
}

// complete acknowledges a fully answered flight. After a refusal (halt),
// only what ran in order is acknowledged: a group that did not run leaves
// a hole, and a group that ran after a hole makes the target dirty.
func (s *session) complete(f *flight) {
	ack := true
	if s.halted != nil && !f.resent {
		for i := range f.groups {
			switch g := &f.groups[i]; {
			case g.status == statusPending && (len(g.ops) > 0 || g.marker != ""):
				s.hole = true
				ack = false
			case g.status == statusApplied && s.hole:
				s.w.dirty = true
			}
		}
		ack = ack && !s.hole
	}
	s.w.led.acknowledge(f, ack, s.armDeadline)
}

// transient reports whether an error reply means "try again later": the
// server is loading, busy, not a master right now, or mid-failover.
func transient(msg string) bool { return fault.Retry(msg) }

// redirect reports whether an error reply means the command's slot is
// served elsewhere, now or soon.
func redirect(msg string) bool { return fault.Redirect(msg) }
