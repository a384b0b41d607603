package sender

import (
	"strings"
	"testing"

	"spoolgate/conf"
)

// TestReloadAppliesLiveKeys holds Reload to conf's table: a sender.* key is
// live for the sender (conf.LiveIn, and so conf.ReloadDiff, which the
// daemon logs) exactly when changing it changes what Reload applies
// (tunablesOf, tlsFilesOf). Before the table, sender.settle and
// sender.scan_interval were applied here but reported as needing a
// restart; this test fails on such a disagreement either way round.
func TestReloadAppliesLiveKeys(t *testing.T) {
	// Keys without a variant: TLS files must exist on disk (their reload is
	// covered by the TLS tests); source=amqp needs sender.amqp.url (a
	// restart key either way).
	noVariant := map[string]bool{"sender.tls.ca": true, "sender.tls.cert": true, "sender.tls.key": true, "sender.source": true}
	def := conf.Default().Sender
	for _, key := range conf.Keys() {
		if !strings.HasPrefix(key, "sender.") {
			continue
		}
		c, ok := conf.Variant(key)
		if !ok {
			if !noVariant[key] {
				t.Errorf("%s: no variant value: add one to conf's variants, or list the key here with why", key)
			}
			continue
		}
		applied := *tunablesOf(c.Sender) != *tunablesOf(def) || tlsFilesOf(c.Sender) != tlsFilesOf(def)
		if live := conf.LiveIn("sender", key); applied != live {
			t.Errorf("%s: Reload applies it: %v; conf's table says live: %v", key, applied, live)
		}
	}
}
