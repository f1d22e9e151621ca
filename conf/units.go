package conf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": KiB,
	"mib": MiB,
	"gib": GiB,
	"tib": 1 << 40,
}

const sizeHelp = `use a number of bytes or a number with a unit: KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. "64MiB"`

// ParseSize parses a byte size: "1048576", "1MiB", "1.5 GB", "64kib". Units
// are KB/MB/GB/TB (decimal) and KiB/MiB/GiB/TiB (binary), case-insensitive.
// Negative sizes are errors.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("size %q must not be negative", s)
	}
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("bad size %q (%s)", s, sizeHelp)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q (%s)", s, sizeHelp)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v), nil
}

// FormatSize formats n in the largest unit that divides it exactly
// ("64MiB", "1GiB", "5MB"), else in bytes ("1234"). ParseSize reads it back.
func FormatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		s string
		n int64
	}{{"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", GiB}, {"GB", 1e9}, {"MiB", MiB}, {"MB", 1e6}, {"KiB", KiB}, {"KB", 1e3}} {
		if n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

const durationHelp = `use a Go duration like "500ms", "30s", "1m30s", "2h", or a number of seconds`

// ParseDuration parses a Go duration ("30s", "1m30s") or a plain number of
// seconds ("30", "1.5"). Negative durations are errors.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("bad duration %q (%s)", s, durationHelp)
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil && !strings.ContainsAny(t, "eEnNxXpP_") {
		return secondsToDuration(f, s)
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (%s)", s, durationHelp)
	}
	return d, nil
}

func secondsToDuration(f float64, orig string) (time.Duration, error) {
	if f < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", orig)
	}
	if f*float64(time.Second) >= math.MaxInt64 {
		return 0, fmt.Errorf("duration %q is too large", orig)
	}
	return time.Duration(f * float64(time.Second)), nil
}
