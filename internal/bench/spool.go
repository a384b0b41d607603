package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// MakeSpool writes n single-line result files into dir the way a producer
// does (write under a .tmp name, then rename in), with modification times
// one millisecond apart ending an hour ago, so they are settled and their
// order is known: file i is the i-th oldest. base offsets the process_no.
func MakeSpool(dir string, n, base int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := time.Now().Add(-time.Hour - time.Duration(n)*time.Millisecond)
	now := time.Now().Format("20060102150405")
	for i := range n {
		pno := fmt.Sprintf("%09d", (base+i)%1_000_000_000)
		name := fmt.Sprintf("result-%09d.txt", i)
		line := "REQ|" + pno + "|" + now + "|BENCH|SV01|F-" + pno + "|spool bench payload|\n"
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
			return err
		}
		mt := start.Add(time.Duration(i) * time.Millisecond)
		if err := os.Chtimes(tmp, mt, mt); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// HoldIdle opens n connections to addr that send nothing, holds them until
// ctx is done, and returns how many it opened. Connection errors stop the
// opening early; they are not an error of HoldIdle.
func HoldIdle(ctx context.Context, addr string, n int) (int, error) {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		if ctx.Err() != nil {
			break
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	<-ctx.Done()
	return len(conns), nil
}

// ClaimTiming is how one spool file went through the sender: Wait from the
// start of TimeClaim until the sender claimed it, Took from the claim until
// the claim was disposed of (its every line done).
type ClaimTiming struct {
	Wait time.Duration `json:"wait_ns"`
	Took time.Duration `json:"took_ns"`
}

func (c ClaimTiming) String() string {
	return fmt.Sprintf("claimed after %s, done %s later", c.Wait.Round(time.Millisecond), c.Took.Round(time.Microsecond))
}

// ErrClaimedAlready reports that TimeClaim found the file claimed at its
// first look: started too late to time it.
var ErrClaimedAlready = errors.New("claimed already")

// TimeClaim times the file name of spool through the sender by looking at
// its claim, spool/.inflight/name, every poll: until it appears (the sender
// claimed it), then until it is gone (delivered and deleted or archived,
// failed, or put back). ready, if not nil, is called after the first look,
// which must not find the claim (ErrClaimedAlready). It returns ctx's error
// when ctx ends first.
func TimeClaim(ctx context.Context, spool, name string, poll time.Duration, ready func()) (ClaimTiming, error) {
	claim := filepath.Join(spool, ".inflight", name)
	start := time.Now()
	var c ClaimTiming
	t := time.NewTicker(poll)
	defer t.Stop()
	var claimed time.Time
	for first := true; ; first = false {
		_, err := os.Lstat(claim)
		switch {
		case err == nil && first:
			return c, fmt.Errorf("%s: %w", claim, ErrClaimedAlready)
		case err == nil && claimed.IsZero():
			claimed = time.Now()
			c.Wait = claimed.Sub(start)
		case errors.Is(err, fs.ErrNotExist) && !claimed.IsZero():
			c.Took = time.Since(claimed)
			return c, nil
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return c, err
		}
		if first && ready != nil {
			ready()
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-t.C:
		}
	}
}
