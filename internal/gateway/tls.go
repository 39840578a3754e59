package gateway

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// certs holds the client listener's certificate; a reload loads the files
// again and new handshakes use the new pair, while connections already open
// keep theirs.
type certs struct {
	cur atomic.Pointer[tls.Certificate]
}

// load reads the pair and, when it is valid, makes it the one served.
func (c *certs) load(t TLSConfig) error {
	pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return fmt.Errorf("loading gateway.server.tls (%s, %s): %w; check that both files are PEM and belong together", t.CertFile, t.KeyFile, err)
	}
	c.cur.Store(&pair)
	return nil
}

func (c *certs) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// tlsConfig serves the held certificate; h2 is offered through ALPN by http.Server.
func (c *certs) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
}
