package main

// Members that hold the gossip key but are not configured (tier 3: real
// processes in network namespaces, root).

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/resman-pbx/resman/resilience/testkit"
)

// staysActive reads /active of one node every 50ms and keeps every
// sample where it did not answer 200 (a node that leaves Active, even for
// one sample, is seen).
type staysActive struct {
	stop, done chan struct{}
	mu         sync.Mutex
	samples    int
	bad        []string
}

func sampleStaysActive(url string) *staysActive {
	s := &staysActive{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			code := 0
			resp, err := client.Get(url + "/active")
			if err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			s.mu.Lock()
			s.samples++
			if code != http.StatusOK {
				s.bad = append(s.bad, fmt.Sprintf("%s: %d %v", time.Now().Format("15:04:05.000"), code, err))
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *staysActive) finish() (int, []string) {
	close(s.stop)
	<-s.done
	return s.samples, s.bad
}

// TestForgedGossipMembersAreRefused: with the Standby killed, a process
// holding the gossip key takes the Standby's name and claims Active at
// epoch 1001, then another announces itself as a witness. Before, the
// first made the Main step down (no node Active) and the second counted as
// the witness. Now both are refused by the Main and the witness: the Main
// never leaves Active and audits each refusal.
func TestForgedGossipMembersAreRefused(t *testing.T) {
	a := newAutoPair(t, true, "forger")
	mainIP, witnessIP, forgerIP := a.lab.host("main").ip, a.lab.host("witness").ip, a.lab.host("forger").ip
	epoch := status(t, a.mainURL).Epoch
	a.standby.kill(syscall.SIGKILL)
	testkit.Eventually(t, func() bool {
		p := status(t, a.mainURL).Peer
		return p != nil && !p.Reachable
	}, "the main sees the standby lost")
	active := sampleStaysActive(a.mainURL)

	forge := func(name, role, status string) *proc {
		cmd := a.lab.command("forger", binary, "standin", "gossip", "--name", name, "--role", role,
			"--status", status, "--epoch", "1001", "--bind", forgerIP+":7946",
			"--join", mainIP+":7946", "--join", witnessIP+":7946")
		cmd.Env = append(os.Environ(), "RESMAN_GOSSIP_KEY="+gossipKey)
		p := &proc{t: t, name: "forger " + name, cmd: cmd, logs: &testkit.Buffer{}, exited: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = p.logs, p.logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { cmd.Wait(); close(p.exited) }()
		t.Cleanup(func() { p.kill(syscall.SIGKILL) })
		return p
	}

	f := forge("standby", "standby", "active")
	testkit.Eventually(t, func() bool {
		return auditHas(t, a.mainURL, "gossip member standby at "+forgerIP+":7946 holds the gossip key but is not a configured member")
	}, "the main audits the forged standby")
	testkit.Eventually(t, func() bool {
		return auditHas(t, "http://"+witnessIP+":9440", "gossip member standby at "+forgerIP+":7946")
	}, "the witness audits the forged standby")
	f.kill(syscall.SIGTERM)

	w := forge("witness-2", "witness", "inactive")
	testkit.Eventually(t, func() bool {
		return auditHas(t, a.mainURL, "gossip member witness-2 at "+forgerIP+":7946")
	}, "the main audits the forged witness")
	// A few gossip rounds with the forger announcing itself.
	time.Sleep(3 * time.Second)
	w.kill(syscall.SIGTERM)

	samples, bad := active.finish()
	if len(bad) > 0 {
		t.Fatalf("the main left Active in %d of %d samples:\n%v", len(bad), samples, bad)
	}
	st := status(t, a.mainURL)
	if st.Status != "active" || st.Epoch != epoch || st.Peer == nil || st.Peer.Reachable {
		t.Fatalf("main: %s at epoch %d (was %d), peer %+v; want still Active, the peer still lost", st.Status, st.Epoch, epoch, st.Peer)
	}
	refused, err := strconv.ParseFloat(metricLine(t, a.mainURL, "resman_gossip_members_refused_total"), 64)
	if err != nil || refused < 2 {
		t.Fatalf("resman_gossip_members_refused_total = %v (%v), want a count per refused announcement", refused, err)
	}
	t.Logf("main stayed Active over %d samples; refused %v announcements", samples, refused)
}
