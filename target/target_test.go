package target

import (
	"testing"

	"github.com/ferry-dev/ferry/writer"
)

// The names of the job's own keys are what writer.OwnKey recognises: a source key
// of such a name is refused rather than overwritten and later deleted.
func TestOwnKeyNames(t *testing.T) {
	const job = "orders"
	for _, k := range []string{
		writer.MarkerKey(job), streamMarkerKey(job, 3), slotMarker(job, 1234),
		streamMarker(job, 1234, 2), LeaseKey(job, -1), LeaseKey(job, 77), writer.OwnPrefix + job + ":probe",
	} {
		if !writer.OwnKey(job, []byte(k)) {
			t.Errorf("writer.OwnKey(%q, %q) = false: the job's own key is not recognised", job, k)
		}
		if writer.OwnKey(job+"2", []byte(k)) {
			t.Errorf("writer.OwnKey(%q, %q) = true: another job's key taken for its own", job+"2", k)
		}
	}
}

func TestOwnKey(t *testing.T) {
	for _, c := range []struct {
		key  string
		want bool
	}{
		{"__ferry:orders:pos", true},
		{"__ferry:orders:probe", true},
		{"__ferry:{06S}:orders", true},
		{"__ferry:{06S}:orders:s2", true},
		{"__ferry:orders", true},
		{"__ferry:orders2:pos", false}, // another job
		{"__ferry:other:pos", false},
		{"__ferry:{06S}:other", false},
		{"__ferry:{06S}orders", false},
		{"__ferry:{06S", false},
		{"ferry:orders:pos", false},
		{"orders", false},
	} {
		if got := writer.OwnKey("orders", []byte(c.key)); got != c.want {
			t.Errorf("writer.OwnKey(orders, %q) = %v, want %v", c.key, got, c.want)
		}
	}
}

// resumable picks the best live marker of the history, and none when a
// snapshot marker is newer than every live one or any marker is dirty.
func TestResumable(t *testing.T) {
	live := func(id string, seq uint64, low int64) writer.Position {
		return writer.Position{ReplID: id, Seq: seq, State: writer.StateLive, Low: low}
	}
	snap := func(id string, seq uint64) writer.Position {
		return writer.Position{ReplID: id, Seq: seq, State: writer.StateSnapshot}
	}
	byLow := func(a, b writer.Position) bool { return a.Low > b.Low }
	for _, tc := range []struct {
		name    string
		markers []writer.Position
		ok      bool
		low     int64
	}{
		{"none", nil, false, 0},
		{"live", []writer.Position{live("A", 5, 100), live("A", 7, 300), live("A", 6, 200)}, true, 300},
		{"older snapshot", []writer.Position{snap("A", 2), live("A", 7, 300)}, true, 300},
		{"snapshot cut off", []writer.Position{live("A", 7, 300), snap("A", 9)}, false, 0},
		{"other history ignored", []writer.Position{live("B", 9, 900), live("A", 3, 30)}, true, 30},
		{"previous history (id2)", []writer.Position{live("P", 3, 30)}, true, 30},
		{"dirty", []writer.Position{live("A", 7, 300), {ReplID: "A", Seq: 8, State: writer.StateDirty}}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := resumable(tc.markers, "A", "P", byLow)
			if ok != tc.ok || ok && got.Low != tc.low {
				t.Errorf("resumable = %+v, %v; want low %d, %v", got, ok, tc.low, tc.ok)
			}
		})
	}
}
