package lease

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/resp"
)

// leaseServer starts a server and a control client of it.
func leaseServer(t *testing.T) (*redistest.Server, *redis.Client) {
	s := redistest.Start(t)
	c := ctl.New(dial.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return s, c
}

func owner(name string) Owner {
	return Owner{ID: name + "/1/1", Host: name, PID: 1, Started: time.Unix(1, 0)}
}

// TestLifecycle against a real server: taken, refused to another owner,
// taken over (epoch up, the old owner's registered connection killed, its
// renewal and a new connection refused), given up, taken again with a
// higher epoch.
func TestLifecycle(t *testing.T) {
	s, c := leaseServer(t)
	ctx := context.Background()
	const key = "__ferry:j:lease"
	a, b := owner("a"), owner("b")

	ta, err := Acquire(ctx, c, key, a, 30*time.Second, false)
	ea := ta.Epoch
	if err != nil || ea != 1 || ta.Prev.Owner.ID != "" {
		t.Fatalf("first acquire: %+v %v", ta, err)
	}
	if again, err := Acquire(ctx, c, key, a, 30*time.Second, false); err != nil || again.Epoch != ea {
		t.Errorf("the owner again: %+v %v", again, err)
	}
	conn, err := dial.Open(ctx, dial.Options{Addr: s.Addr}, "ferry-writer-0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := Register(conn, key, "ferry-writer-0", a, ea); err != nil {
		t.Fatal(err)
	}

	var held *HeldError
	if _, err := Acquire(ctx, c, key, b, 30*time.Second, false); !errors.As(err, &held) || held.Info.Owner.ID != a.ID {
		t.Fatalf("another owner without takeover: %v", err)
	}
	tb, err := Acquire(ctx, c, key, b, 30*time.Second, true)
	eb := tb.Epoch
	if err != nil || eb != 2 || tb.Prev.Owner.ID != a.ID || tb.PrevGone || tb.Closed != 1 || tb.Unkilled != 0 || !tb.Confirmed {
		t.Fatalf("takeover: %+v %v", tb, err)
	}
	if _, err := conn.Do("PING"); err == nil {
		t.Error("the old owner's registered connection still answers after the takeover")
	}
	var taken *TakenOverError
	if _, err := Renew(ctx, c, key, a, ea, 30*time.Second); !errors.As(err, &taken) || taken.By.Owner.ID != b.ID {
		t.Errorf("the old owner's renewal: %v", err)
	}
	conn2, err := dial.Open(ctx, dial.Options{Addr: s.Addr}, "ferry-writer-0", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if err := Register(conn2, key, "ferry-writer-0", a, ea); !errors.As(err, &taken) {
		t.Errorf("a new connection of the old owner: %v", err)
	}

	if err := Release(ctx, c, key, eb, false); err != nil {
		t.Fatal(err)
	}
	tc, err := Acquire(ctx, c, key, owner("c"), 30*time.Second, false)
	if err != nil || tc.Epoch != 3 || tc.Prev.Owner.ID != "" {
		t.Errorf("after release: %+v %v (epochs only grow)", tc, err)
	}
}

// TestExpired: a lease not renewed for its time is free without takeover.
func TestExpired(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	c := ctl.New(dial.Options{Addr: s.Addr})
	defer c.Close()
	const key = "__ferry:j:lease"
	if _, err := Acquire(ctx, c, key, owner("a"), time.Second, false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	tb, err := Acquire(ctx, c, key, owner("b"), time.Second, false)
	if err != nil || tb.Epoch != 2 || tb.Prev.Owner.ID != owner("a").ID || tb.PrevGone {
		t.Errorf("after it ran out: %+v %v", tb, err)
	}
}

// TestReleaseDrop: a complete run deletes its lease.
func TestReleaseDrop(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	c := ctl.New(dial.Options{Addr: s.Addr})
	defer c.Close()
	const key = "__ferry:j:lease"
	ta, err := Acquire(ctx, c, key, owner("a"), time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := Release(ctx, c, key, ta.Epoch, true); err != nil || c.Exists(ctx, key).Val() != 0 {
		t.Errorf("dropped lease: %v, exists %d", err, c.Exists(ctx, key).Val())
	}
}

// TestReleaseContended: writer connections registering while the lease is
// given up (a run that fails as its writers connect) do not make Release
// fail: it looks again, and the lease is free for the next start.
func TestReleaseContended(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	c := ctl.New(dial.Options{Addr: s.Addr})
	defer c.Close()
	const key = "__ferry:j:lease"
	ta, err := Acquire(ctx, c, key, owner("a"), time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	w := ctl.New(dial.Options{Addr: s.Addr})
	defer w.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 300; i++ { // a burst of registrations, then quiet
			select {
			case <-stop:
				return
			default:
			}
			w.HSet(ctx, key, "conn:ferry-writer-"+strconv.Itoa(i%3), i)
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = Release(rctx, c, key, ta.Epoch, false)
	cancel()
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("Release under registrations: %v", err)
	}
	tb, err := Acquire(ctx, c, key, owner("b"), time.Minute, false)
	if err != nil {
		t.Fatalf("the next start after a release: %v", err)
	}
	if tb.Epoch <= ta.Epoch {
		t.Errorf("epoch %d after %d", tb.Epoch, ta.Epoch)
	}
}

// TestAcquireAgainForgetsConnections: when its owner takes a lease again (a
// new attempt of the run, whose old connections are closed), the
// connections registered in it are forgotten. A lease moves with its slot
// when a cluster is resharded, so the IDs it lists may have been
// registered on another master, where they named ferry's connections; here
// they may name anyone's. A later takeover must not kill by them.
func TestAcquireAgainForgetsConnections(t *testing.T) {
	s, c := leaseServer(t)
	ctx := context.Background()
	const key = "__ferry:j:lease"
	a, b := owner("a"), owner("b")
	ta, other := foreignRegistered(t, s, c, key, a)
	again, err := Acquire(ctx, c, key, a, 30*time.Second, false)
	if err != nil || again.Epoch != ta.Epoch {
		t.Fatalf("the owner again: %+v %v", again, err)
	}
	if info, err := Read(ctx, c, key); err != nil || len(info.Conns) != 0 {
		t.Errorf("after the owner took it again the lease lists %v (%v), want no connections", info.Conns, err)
	}
	tb, err := Acquire(ctx, c, key, b, 30*time.Second, true)
	if err != nil || tb.Closed != 0 || tb.Unkilled != 0 {
		t.Fatalf("takeover: %+v %v", tb, err)
	}
	if _, err := other.Do("PING"); err != nil {
		t.Errorf("a takeover killed a connection by an ID from an earlier attempt: %v", err)
	}
}

// TestTakeoverKillsByName: a takeover kills a registered ID only while
// CLIENT LIST shows it under the name it was registered with. Here the ID
// names a connection of someone else's (as one from another master would,
// in a lease that moved with its slot): it is left open and counted gone.
func TestTakeoverKillsByName(t *testing.T) {
	s, c := leaseServer(t)
	ctx := context.Background()
	const key = "__ferry:j:lease"
	_, other := foreignRegistered(t, s, c, key, owner("a"))
	tb, err := Acquire(ctx, c, key, owner("b"), 30*time.Second, true)
	if err != nil || tb.Closed != 1 || tb.Unkilled != 0 {
		t.Fatalf("takeover: %+v %v, want the registered connection counted closed", tb, err)
	}
	if _, err := other.Do("PING"); err != nil {
		t.Errorf("a takeover killed a connection named otherwise than the one registered: %v", err)
	}
}

// foreignRegistered has a take the lease at key and registers, as a's
// ferry-writer-0, a connection named app: it stands for an ID registered
// elsewhere that names someone else's connection here.
func foreignRegistered(t *testing.T, s *redistest.Server, c *redis.Client, key string, a Owner) (Taken, *resp.Conn) {
	t.Helper()
	ctx := context.Background()
	ta, err := Acquire(ctx, c, key, a, 30*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	other, err := dial.Open(ctx, dial.Options{Addr: s.Addr}, "app", 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	if err := Register(other, key, "ferry-writer-0", a, ta.Epoch); err != nil {
		t.Fatal(err)
	}
	return ta, other
}
