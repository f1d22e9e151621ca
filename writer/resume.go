// Resuming on a new connection: the target's markers say which groups in
// flight it applied; the ledger acknowledges them and queues the rest again.

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
	markers, err := readMarkers(c, w.led.markerKeys())
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
	nApplied, nBack, rewound := w.led.requeueAfterDrop(markers)
	if rewound != nil {
		rewound.Endpoint = w.Addr()
		return rewound
	}
	if nApplied > 0 || nBack > 0 {
		w.log.Info().Int("groups_found_applied", nApplied).Int("groups_replayed", nBack).Msg("resumed from the target's markers")
	}
	return nil
}
