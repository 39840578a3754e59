package render

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIntegrationNginxConfig runs `nginx -t` on the rendered nginx.conf, with a
// throwaway certificate in place of the placeholders and the gateway's compose
// host name pointed at loopback (nginx resolves upstreams while checking).
func TestIntegrationNginxConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the nginx binary; skipped under -short")
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/nginx") // Debian installs it outside a user's PATH
	}
	if err != nil {
		t.Fatal("nginx is not installed; install it (apt-get install nginx, brew install nginx) or run with -short")
	}
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeSelfSignedCert(t, crt, key)
	conf := string(fileData(t, renderTest(t, "gpu1", Nginx), "nginx/nginx.conf"))
	for old, repl := range map[string]string{
		"/etc/nginx/certs/tls.crt": crt,
		"/etc/nginx/certs/tls.key": key,
		"server gateway:":          "server 127.0.0.1:",
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("nginx.conf no longer contains %q", old)
		}
		conf = strings.ReplaceAll(conf, old, repl)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir, "-c", path, "-e", filepath.Join(dir, "logs", "error.log"),
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+";").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t rejects nginx.conf: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "[warn]") {
		t.Errorf("nginx -t warns:\n%s", out)
	}
}

func writeSelfSignedCert(t *testing.T, crtPath, keyPath string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "chat.example.com"},
		DNSNames:     []string{"chat.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}
