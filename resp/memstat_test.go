package resp

import "runtime"

// memAlloc is the total of bytes allocated so far.
func memAlloc() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.TotalAlloc)
}
