package redistest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Ports are drawn from [portLo, portHi): below the Linux ephemeral range
// (32768-60999) together with their cluster bus port (+10000), so outgoing
// connections never hold them. Parallel test binaries pick at random; a clash
// that slips through is caught at startup (the answering PID is checked) and retried.
const (
	portLo  = 12000
	portHi  = 22000
	busDiff = 10000
)

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{} // handed out by this process: never handed out twice
)

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func pickPort(needBus bool) (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < 1000; i++ {
		p := portLo + rand.IntN(portHi-portLo)
		if portUsed[p] || !portFree(p) || (needBus && !portFree(p+busDiff)) {
			continue
		}
		portUsed[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free loopback port found in [%d, %d)", portLo, portHi)
}

// freePortPair returns a port that is free together with its cluster bus port.
func freePortPair() (int, error) { return pickPort(true) }

// FreePort returns a free loopback TCP port (for ferry's own listeners, fake
// endpoints...). A port is never returned twice within one test binary.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := pickPort(false)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return p
}
