// Per-field hash TTLs (Redis 7.4+): compared where both sides hold them,
// reported as lost where the target cannot.

package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// cmpFieldTTLs compares the per-field TTLs of a hash whose fields and values
// are equal (absolute expiry times, so the moment of each read does not
// matter). A target that cannot hold field TTLs is told apart: its
// difference is a loss that on_unsupported = "drop" accepted, not a bug.
func (e *engine) cmpFieldTTLs(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (Kind, string, error) {
	cur, items := scanReply(kc.sh[1].Val())
	var lost int64
	var firstLost string
	for {
		var fields []any
		for i := 0; i < len(items); i += 2 {
			fields = append(fields, items[i])
		}
		if len(fields) > 0 {
			args := append([]any{"HPEXPIRETIME", kc.key, "FIELDS", len(fields)}, fields...)
			sv, err := e.src.do(ctx, sc, args...)
			if err != nil {
				return soft2(wrapReply(err))
			}
			st := list1(sv)
			if !e.dst.fieldTTL {
				for i, x := range st {
					if num(x) > 0 {
						if lost++; firstLost == "" && i < len(fields) {
							firstLost = str(fields[i])
						}
					}
				}
			} else {
				dv, err := e.dst.do(ctx, dc, args...)
				if err != nil {
					return soft2(wrapReply(err))
				}
				dt := list1(dv)
				for i := range fields {
					if i >= len(st) || i >= len(dt) {
						break
					}
					if d := cmpFieldExpiry(num(st[i]), num(dt[i]), e.o.TTLTolerance); d != "" {
						return KindTTL, fmt.Sprintf("field %s: %s", quote(str(fields[i])), d), nil
					}
				}
			}
		}
		if cur == "0" {
			break
		}
		v, err := e.src.do(ctx, sc, "HSCAN", kc.key, cur, "COUNT", pageSize)
		if err != nil {
			return soft2(wrapReply(err))
		}
		cur, items = scanReply(v)
	}
	if lost > 0 {
		return KindLostFieldTTL, fmt.Sprintf("%d field TTL(s) on the source (field %s first) that the target cannot hold", lost, quote(firstLost)), nil
	}
	return "", "", nil
}

// soft2 is soft for a check that also returns a kind: a reply error is a
// value difference while writes arrive, anything else ends the run.
func soft2(err error) (Kind, string, error) {
	d, err := soft(err)
	if d != "" {
		return KindValue, d, err
	}
	return "", "", err
}

// cmpFieldExpiry compares two HPEXPIRETIME answers (unix ms; -1 no TTL, -2
// no such field).
func cmpFieldExpiry(s, d int64, tol time.Duration) string {
	switch {
	case s == d:
		return ""
	case s == -2 || d == -2:
		return "expired while being read"
	case s == -1:
		return fmt.Sprintf("target has a TTL until %s, source has none", time.UnixMilli(d).UTC().Format(time.RFC3339))
	case d == -1:
		return fmt.Sprintf("source has a TTL until %s, target has none", time.UnixMilli(s).UTC().Format(time.RFC3339))
	}
	delta := s - d
	if delta < 0 {
		delta = -delta
	}
	if delta <= tol.Milliseconds() {
		return ""
	}
	return fmt.Sprintf("TTL until %s on source, %s on target (%s apart, tolerance %s)",
		time.UnixMilli(s).UTC().Format(time.RFC3339), time.UnixMilli(d).UTC().Format(time.RFC3339), fmtMS(delta), tol)
}
