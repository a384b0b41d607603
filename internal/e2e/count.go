package e2e

import (
	"fmt"
	"testing"

	"spoolgate/protocol"
)

// StoredOnce checks that each of the process_nos 0 … n-1 (%09d, as the
// tests' messages carry them) is among the messages got at least once,
// failing t when one is missing, and returns how many copies there are
// beyond the first: what a crash, a drain or a retry stored again, which
// the caller holds to its bound (at most N twice).
func StoredOnce(t testing.TB, got []string, n int) (dups int) {
	t.Helper()
	times := make(map[string]int, n)
	for _, m := range got {
		times[string(protocol.DefaultDialect().ProcessNo([]byte(m)))]++
	}
	for i := range n {
		switch c := times[fmt.Sprintf("%09d", i)]; {
		case c == 0:
			t.Fatalf("process_no %d never stored", i)
		case c > 1:
			dups += c - 1
		}
	}
	return dups
}
