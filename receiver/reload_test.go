package receiver

import (
	"reflect"
	"strings"
	"testing"

	"spoolgate/conf"
)

// TestReloadAppliesLiveKeys holds Reload to conf's table: a receiver.* key
// is live for the receiver (conf.LiveIn, and so conf.ReloadDiff, which the
// daemon logs) exactly when changing it changes what Reload applies
// (reloadedOf). It fails on a disagreement either way round: a key applied
// but reported as needing a restart, or reported live but ignored.
func TestReloadAppliesLiveKeys(t *testing.T) {
	// Keys without a variant value: the TLS files must exist on disk and
	// client_names needs a client CA, proxy_protocol=on needs
	// proxy_trusted (their reload is covered by the TLS and PROXY tests);
	// sink=amqp needs receiver.amqp.url (a restart key either way).
	noVariant := map[string]bool{
		"receiver.tls.cert": true, "receiver.tls.key": true, "receiver.tls.client_ca": true,
		"receiver.tls.client_names": true, "receiver.proxy_protocol": true, "receiver.sink": true,
	}
	def := conf.Default().Receiver
	defLive, defFiles := reloadedOf(def, def.MaxMessageBytes)
	for _, key := range conf.Keys() {
		if !strings.HasPrefix(key, "receiver.") {
			continue
		}
		c, ok := conf.Variant(key)
		if !ok {
			if !noVariant[key] {
				t.Errorf("%s: no variant value: add one to conf's variants, or list the key here with why", key)
			}
			continue
		}
		l, files := reloadedOf(c.Receiver, def.MaxMessageBytes)
		applied := !reflect.DeepEqual(l, defLive) || !reflect.DeepEqual(files, defFiles)
		if live := conf.LiveIn("receiver", key); applied != live {
			t.Errorf("%s: Reload applies it: %v; conf's table says live: %v", key, applied, live)
		}
	}
}
