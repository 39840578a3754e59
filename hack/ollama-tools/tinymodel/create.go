package main

import (
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

//go:embed Modelfile
var modelfile []byte

// Model is the name the tests ask Ollama for.
const Model = "aideploy-tiny"

// create imports the model into an OLLAMA_MODELS folder the way a user would:
// `ollama create` from a Modelfile, against an `ollama serve` on a free
// loopback port that lives only as long as the import.
func create(ollama, dir, models string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := write(filepath.Join(dir, "tiny.gguf")); err != nil {
		return err
	}
	mf := filepath.Join(dir, "Modelfile")
	if err := os.WriteFile(mf, modelfile, 0o644); err != nil {
		return err
	}
	home, err := os.MkdirTemp("", "tinymodel-home")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	host, err := freeAddr()
	if err != nil {
		return err
	}
	env := append(os.Environ(), "HOME="+home, "OLLAMA_HOST="+host, "OLLAMA_MODELS="+models)
	serve := exec.Command(ollama, "serve")
	serve.Env = env
	log, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	serve.Stdout, serve.Stderr = log, log
	if err := serve.Start(); err != nil {
		return fmt.Errorf("starting %s serve: %w", ollama, err)
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	if err := waitUp("http://"+host+"/", 60*time.Second); err != nil {
		return fmt.Errorf("ollama serve on %s: %w (log in %s)", host, err, log.Name())
	}
	c := exec.Command(ollama, "create", Model, "-f", mf)
	c.Env = env
	c.Dir = dir
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("ollama create %s: %w\n%s", Model, err, out)
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitUp polls url until it answers 200 or the time is up.
func waitUp(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
