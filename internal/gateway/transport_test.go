package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/units"
)

// A body that trickles in (a byte now and then) is cut at the body deadline,
// not held for as long as the client likes.
func TestIntegrationSlowBodyIsCutAtTheBodyDeadline(t *testing.T) {
	_, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.Server.BodyTimeout = units.Duration(time.Second)
	g := runGateway(t, cfg, Options{})
	c, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the slow client: one byte every 200ms
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after 10s")
	}
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Fatalf("the connection closed after %v, want just after the 1s body deadline", d)
	}
}

// dialIdle opens n keep-alive connections that each had one answer and now
// sit idle.
func dialIdle(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var out []net.Conn
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		if m, err := c.Read(buf); err != nil || !strings.Contains(string(buf[:m]), "200 OK") {
			t.Fatalf("idle connection %d: %q %v", i, buf[:m], err)
		}
		out = append(out, c)
	}
	return out
}

// At the connection limit, idle keep-alive connections make room for new
// clients, longest idle first; when every connection is busy a new one is
// closed at once instead of hanging in the backlog.
func TestIntegrationConnectionLimitServesNewClients(t *testing.T) {
	_, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.Server.MaxConnections = 50
	g := runGateway(t, cfg, Options{})
	addr := strings.TrimPrefix(g.url, "http://")
	idle := dialIdle(t, addr, 50)

	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	resp, err := client.Get(g.url + "/healthz")
	if err != nil {
		t.Fatalf("a new client at the limit: %v", err)
	}
	resp.Body.Close()
	client.CloseIdleConnections()
	_ = idle[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the longest idle connection: %v, want it closed for the new client", err)
	}

	// Now every connection busy: each waits inside a request for its body.
	for _, c := range idle {
		c.Close()
	}
	for i := range 50 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n{"); err != nil {
			t.Fatalf("busy connection %d: %v", i, err)
		}
	}
	// Closed idle connections are given back as the server sees them go:
	// wait until a new one is refused because all are busy.
	start := time.Now()
	waitFor(t, "a new connection to be refused at once", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(make([]byte, 64))
		return n == 0 && err != nil && !isTimeout(err)
	})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing took %v", d)
	}
}

// writeCert writes a fresh self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gateway test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The client listener serves TLS with HTTP/2, and a SIGHUP makes new
// connections get the certificate the files hold now.
func TestIntegrationTLSServesHTTP2AndReloadsTheCertificate(t *testing.T) {
	_, up := fake(t, nil)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "gw.pem"), filepath.Join(dir, "gw-key.pem")
	first := writeCert(t, certFile, keyFile, 1)
	cfg := testConfig(up)
	cfg.Server.TLS = TLSConfig{CertFile: certFile, KeyFile: keyFile}
	g := runGateway(t, cfg, Options{Reload: func() (Config, error) { return cfg, nil }})
	url := strings.Replace(g.url, "http://", "https://", 1)
	get := func(trust *x509.Certificate) (*http.Response, error) {
		roots := x509.NewCertPool()
		roots.AddCert(trust)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(first)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("over TLS: %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	second := writeCert(t, certFile, keyFile, 2)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new certificate", func() bool { _, err := get(second); return err == nil })
	if _, err := get(first); err == nil {
		t.Errorf("after the reload a new connection still got the old certificate")
	}
}

// Without TLS, HTTP/2 with prior knowledge (h2c) is served beside HTTP/1.1.
func TestIntegrationH2C(t *testing.T) {
	_, up := fake(t, nil)
	g := runGateway(t, testConfig(up), Options{})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post(g.url+"/v1/chat/completions", "application/json", strings.NewReader(streamBody))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || !strings.Contains(string(b), "[DONE]") {
		t.Fatalf("h2c stream: %d %s %q", resp.StatusCode, resp.Proto, b)
	}
}

// An https:// target is reached over TLS, checked against the CA in caFile.
func TestIntegrationHTTPSTarget(t *testing.T) {
	up := httptest.NewTLSServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	t.Cleanup(up.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(up.URL)
	cfg.Pools[0].Targets = []upstream.TargetConfig{{URL: up.URL, CAFile: ca}}
	g := runGateway(t, cfg, Options{})
	resp, body := post(t, g.url+"/v1/chat/completions", chatBody)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "choices") {
		t.Fatalf("through an https target: %d %s", resp.StatusCode, body)
	}
	// Without the CA the target's certificate is refused, and the gateway says so.
	cfg.Pools[0].Targets = []upstream.TargetConfig{{URL: up.URL}}
	g2 := runGateway(t, cfg, Options{})
	resp, body = post(t, g2.url+"/v1/chat/completions", chatAbout(fmt.Sprint("untrusted")))
	if resp.StatusCode/100 != 5 {
		t.Fatalf("an untrusted https target answered: %d %s", resp.StatusCode, body)
	}
}
