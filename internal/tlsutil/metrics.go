package tlsutil

import "github.com/prometheus/client_golang/prometheus"

// expiryDesc is spoolgate_tls_cert_expiry_seconds{role}: when each
// certificate in use expires, as a Unix time in seconds (alert on
// spoolgate_tls_cert_expiry_seconds - time() < 30 * 86400).
var expiryDesc = prometheus.NewDesc("spoolgate_tls_cert_expiry_seconds",
	"When the certificate in use expires (Unix time, seconds), by role: server, client_ca (receiver), client, ca (sender; for a CA bundle the first to expire).",
	[]string{"role"}, nil)

// ExpiryCollector returns a collector of spoolgate_tls_cert_expiry_seconds
// that asks expiry at each scrape, so a reload shows at once.
func ExpiryCollector(expiry func() []Expiry) prometheus.Collector {
	return expiryCollector(expiry)
}

type expiryCollector func() []Expiry

func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c() {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(e.NotAfter.Unix()), e.Role)
	}
}
