package writer

import (
	"fmt"
	"strconv"
	"strings"
)

// Position is what the target has applied, as recorded in the marker key on
// the target in the same transaction as the data it describes. After a
// reconnect the target itself says where to resume; after a restart ferry asks
// the source for PSYNC <ReplID> <Offset+1>.
type Position struct {
	Seq    uint64 // the writer's batch sequence number
	State  State
	ReplID string // source replication id the offsets belong to
	Offset int64  // source replication offset of the last byte applied
	DB     int    // the source db selected at Offset (the stream does not repeat SELECT after a resume)
	// Low is the job's global low watermark when the marker was written:
	// every unit up to that source offset was applied on every target
	// master (-1: unknown). A cluster target's restart resumes from it.
	Low int64
}

// State says how far a job got on this target.
type State string

const (
	// StateSnapshot: a snapshot is being applied; the position is not resumable.
	StateSnapshot State = "snapshot"
	// StateLive: the snapshot is complete and Offset is exact.
	StateLive State = "live"
	// StateDirty: ferry stopped after the target refused a batch it had
	// partly pipelined past; only a full resync restores equality.
	StateDirty State = "dirty"
)

const markerVersion = "ferry1"

// Encode is the marker value.
func (p Position) Encode() string { return string(p.AppendEncode(make([]byte, 0, 96))) }

// AppendEncode appends the marker value to b.
func (p Position) AppendEncode(b []byte) []byte {
	replid := p.ReplID
	if replid == "" {
		replid = "-"
	}
	b = append(b, markerVersion...)
	b = strconv.AppendUint(append(b, ' '), p.Seq, 10)
	b = append(append(b, ' '), p.State...)
	b = append(append(b, ' '), replid...)
	b = strconv.AppendInt(append(b, ' '), p.Offset, 10)
	b = strconv.AppendInt(append(b, ' '), int64(p.DB), 10)
	b = strconv.AppendInt(append(b, ' '), p.Low, 10)
	return b
}

// ParsePosition decodes a marker value.
func ParsePosition(s string) (Position, error) {
	f := strings.Fields(s)
	if (len(f) != 6 && len(f) != 7) || f[0] != markerVersion {
		return Position{}, fmt.Errorf("unrecognised ferry marker %q", clipKey([]byte(s)))
	}
	var p Position
	var err error
	if p.Seq, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return Position{}, fmt.Errorf("ferry marker: bad sequence %q", f[1])
	}
	p.State = State(f[2])
	switch p.State {
	case StateSnapshot, StateLive, StateDirty:
	default:
		return Position{}, fmt.Errorf("ferry marker: bad state %q", f[2])
	}
	if f[3] != "-" {
		p.ReplID = f[3]
	}
	if p.Offset, err = strconv.ParseInt(f[4], 10, 64); err != nil {
		return Position{}, fmt.Errorf("ferry marker: bad offset %q", f[4])
	}
	if p.DB, err = strconv.Atoi(f[5]); err != nil {
		return Position{}, fmt.Errorf("ferry marker: bad db %q", f[5])
	}
	p.Low = -1
	if len(f) == 7 {
		if p.Low, err = strconv.ParseInt(f[6], 10, 64); err != nil {
			return Position{}, fmt.Errorf("ferry marker: bad watermark %q", f[6])
		}
	}
	return p, nil
}

// MarkerKey is the key holding a job's position on a standalone target.
func MarkerKey(job string) string { return OwnPrefix + job + ":pos" }
