package tlsutil

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Client is the sender's TLS: Config returns a tls.Config for one dial
// with the CA, server name and client certificate of the last successful
// load. Its methods are safe for concurrent use.
type Client struct {
	mu  sync.Mutex
	cur atomic.Pointer[clientState]
}

type clientState struct {
	files ClientFiles
	m     *material
}

// NewClient loads f; it returns an error naming the key and file when
// the pair or the CA does not load.
func NewClient(f ClientFiles) (*Client, error) {
	st, err := loadClient(f)
	if err != nil {
		return nil, err
	}
	c := &Client{}
	c.cur.Store(st)
	return c, nil
}

func loadClient(f ClientFiles) (*clientState, error) {
	m, err := load("sender.tls.cert", f.Cert, "sender.tls.key", f.Key, "sender.tls.ca", f.CA, "client", "ca")
	if err != nil {
		return nil, err
	}
	return &clientState{files: f, m: m}, nil
}

// Config returns the tls.Config to dial addr (host:port) with: the server
// name is sender.tls.server_name, else addr's host. The client certificate
// is read at the handshake, from the last successful load.
func (c *Client) Config(addr string) *tls.Config {
	st := c.cur.Load()
	name := st.files.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(addr)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: name,
		RootCAs:    st.m.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := c.cur.Load().m; m.cert != nil {
				return m.cert, nil
			}
			return &tls.Certificate{}, nil // none: the server decides
		},
	}
}

// Settings returns the files in use.
func (c *Client) Settings() ClientFiles { return c.cur.Load().files }

// Files returns the paths in use, to watch.
func (c *Client) Files() []string {
	f := c.cur.Load().files
	return nonEmpty(f.CA, f.Cert, f.Key)
}

// Reload loads f; on success the next dial uses it and Reload returns what
// changed (nil: nothing). On error the last good files stay in use.
func (c *Client) Reload(f ClientFiles) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := loadClient(f)
	if err != nil {
		return nil, err
	}
	old := c.cur.Load()
	ch := st.m.changes(old.m, "client", "ca")
	if st.files != old.files {
		ch = append(ch, "files "+strings.Join(nonEmpty(f.CA, f.Cert, f.Key), ",")+" server_name "+f.ServerName)
	}
	c.cur.Store(st)
	return ch, nil
}

// Expiry returns when the certificates in use expire.
func (c *Client) Expiry() []Expiry { return slices.Clone(c.cur.Load().m.exp) }
