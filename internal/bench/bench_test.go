package bench

import (
	"context"
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"spoolgate/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunAgainstNull(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- ServeNull(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for _, keep := range []bool{false, true} {
		r, err := Run(context.Background(), Options{Addr: ln.Addr().String(), Clients: 4, Count: 400, KeepAlive: keep, Payload: 100})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("keepalive=%v: %s", keep, r)
		if r.Messages != 400 || r.Codes["200"] != 400 || r.Errors != 0 || r.P50 <= 0 || r.Max < r.P99 {
			t.Fatalf("keepalive=%v: %+v", keep, r)
		}
		if !strings.Contains(r.String(), "200=400") {
			t.Fatalf("String() = %q", r.String())
		}
	}
	if _, err := Run(context.Background(), Options{Addr: ln.Addr().String()}); err == nil {
		t.Fatal("Run without clients accepted")
	}
}

func TestMessages(t *testing.T) {
	spec := protocol.DefaultRequestSpec()
	o := Options{Payload: 50, InvalidEvery: 3}
	for i := range 6 {
		m := message(o, i)
		_, err := spec.Parse(m[:len(m)-1])
		if invalid := (i+1)%3 == 0; (err != nil) != invalid {
			t.Fatalf("message %d %q: err %v, invalid %v", i, m, err, invalid)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	r, err := Run(context.Background(), Options{Addr: addr, Clients: 2, Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 4 || r.FirstError == "" {
		t.Fatalf("%+v", r)
	}
}
