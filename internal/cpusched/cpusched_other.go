//go:build !linux

package cpusched

// Set does nothing off Linux.
func Set(Policy) (int, error) { return 0, ErrUnsupported }

// Get does nothing off Linux.
func Get() (Policy, error) { return Normal, ErrUnsupported }

// Of does nothing off Linux.
func Of(int) (map[int]Policy, error) { return nil, ErrUnsupported }
