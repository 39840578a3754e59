package gateway

import (
	"time"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// ServerConfig is the client side of the gateway: the listener's TLS,
// protocols, limits and timeouts.
type ServerConfig struct {
	// TLS serves the client listener over TLS (HTTP/2 and HTTP/1.1); the files are read again on SIGHUP.
	TLS TLSConfig `yaml:"tls,omitempty" json:"tls,omitempty"`
	// DisableH2C turns off HTTP/2 without TLS (prior knowledge, no Upgrade), which is on by default.
	DisableH2C bool `yaml:"disableH2C,omitempty" json:"disableH2C,omitempty"`
	// MaxConnections bounds open client connections; 0 sizes it from the open-file limit
	// (half of it less a reserve: every client connection may hold one to a model server).
	// At the limit the longest-idle keep-alive connection is closed for a new client; when
	// none is idle the new connection is closed at once.
	MaxConnections int `yaml:"maxConnections,omitempty" json:"maxConnections,omitempty"`
	// MaxHeaderBytes bounds a request's header block.
	MaxHeaderBytes units.ByteSize `yaml:"maxHeaderBytes" json:"maxHeaderBytes"`
	// ReadHeaderTimeout bounds reading a request's header block.
	ReadHeaderTimeout units.Duration `yaml:"readHeaderTimeout" json:"readHeaderTimeout"`
	// BodyTimeout bounds reading a whole request body, however slowly its bytes come.
	BodyTimeout units.Duration `yaml:"bodyTimeout" json:"bodyTimeout"`
	// IdleTimeout closes a keep-alive connection that sends no request for this long.
	IdleTimeout units.Duration `yaml:"idleTimeout" json:"idleTimeout"`
}

// TLSConfig names the certificate and key files of the client listener.
type TLSConfig struct {
	// CertFile is the PEM certificate chain.
	CertFile string `yaml:"certFile,omitempty" json:"certFile,omitempty"`
	// KeyFile is the PEM private key.
	KeyFile string `yaml:"keyFile,omitempty" json:"keyFile,omitempty"`
}

// Enabled says whether the client listener serves TLS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// defaultServer: a header block fits in 64 KiB (net/http's 1 MiB only lets a
// client hold more memory per connection); a body of maxBodyBytes at a slow
// link's pace arrives in a minute.
func defaultServer() ServerConfig {
	return ServerConfig{
		MaxHeaderBytes:    64 << 10,
		ReadHeaderTimeout: units.Duration(10 * time.Second),
		BodyTimeout:       units.Duration(60 * time.Second),
		IdleTimeout:       units.Duration(60 * time.Second),
	}
}

func (s *ServerConfig) setDefaults() {
	d := defaultServer()
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = d.ReadHeaderTimeout
	}
	if s.BodyTimeout == 0 {
		s.BodyTimeout = d.BodyTimeout
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = d.IdleTimeout
	}
}

func (s ServerConfig) validate(errs validate.Errors) {
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		errs.At("tls").Addf("certFile", "and keyFile go together: set both (or --tls-cert and --tls-key), or neither for plain HTTP")
	}
	errs.NonNegative("maxConnections", s.MaxConnections)
	if s.MaxHeaderBytes < 0 {
		errs.Addf("maxHeaderBytes", "(%s) must not be negative", s.MaxHeaderBytes)
	}
	for name, d := range map[string]units.Duration{"readHeaderTimeout": s.ReadHeaderTimeout, "bodyTimeout": s.BodyTimeout, "idleTimeout": s.IdleTimeout} {
		if d < 0 {
			errs.Addf(name, "(%s) must not be negative", time.Duration(d))
		}
	}
}
