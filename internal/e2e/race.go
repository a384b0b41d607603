//go:build race

package e2e

// Race reports whether this program was built with the race detector, so
// that TestMain can build the binaries under test the same way.
const Race = true
