package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestRabbitNode: a node of the test's own starts, answers AMQP on its
// port, survives stop_app/start_app, and is gone (with its epmd) after
// Stop; a three-node cluster forms when SPOOLGATE_RABBIT_CLUSTER is set.
func TestRabbitNode(t *testing.T) {
	start := time.Now()
	n := StartRabbit(t)
	t.Logf("node %s up in %v", n.Name, time.Since(start).Round(time.Millisecond))
	out, err := n.Ctl("-q", "status")
	if err != nil || !strings.Contains(out, n.AMQPAddr[strings.LastIndexByte(n.AMQPAddr, ':')+1:]) {
		t.Fatalf("status: %v\n%s", err, out)
	}
	pid := n.PID()
	n.Stop()
	if !waitGone(pid, time.Second) {
		t.Errorf("node %d still runs after Stop", pid)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
}

func TestRabbitCluster(t *testing.T) {
	if os.Getenv("SPOOLGATE_RABBIT_CLUSTER") == "" {
		t.Skip("set SPOOLGATE_RABBIT_CLUSTER=1 to start a three-node cluster")
	}
	start := time.Now()
	ns := StartRabbitCluster(t, 3)
	t.Logf("cluster of 3 up in %v", time.Since(start).Round(time.Millisecond))
	out, err := ns[2].Ctl("-q", "cluster_status")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if !strings.Contains(out, n.Name) {
			t.Errorf("cluster_status lacks %s:\n%s", n.Name, out)
		}
	}
}
