//go:build !linux

package reader

// Elsewhere what SO_RCVLOWAT does to a read differs between systems, so it
// is left alone and the snapshot is read as it arrives.
const rcvLowatSupported = false

func setRcvLowat(uintptr, int) error { return nil }
