package reader

import "syscall"

// Linux's TCP honours SO_RCVLOWAT in poll and epoll, which Go's network
// poller waits in, and a non-blocking read still returns what is queued.
const rcvLowatSupported = true

func setRcvLowat(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
}
