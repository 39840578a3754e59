package ollamatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Model is the tiny model hack/ollama-build.sh creates.
const Model = "aideploy-tiny"

// Options configure one Ollama server.
type Options struct {
	// NumParallel is OLLAMA_NUM_PARALLEL, the generations one loaded model runs
	// at once; 0 means 1, so tests see queueing with few requests.
	NumParallel int
	// MaxQueue is OLLAMA_MAX_QUEUE, the requests waiting for the scheduler;
	// 0 keeps Ollama's default (512).
	MaxQueue int
	// Env adds variables to the server's environment, such as OLLAMA_KEEP_ALIVE.
	Env []string
}

// Server is an `ollama serve` process owned by one test.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	Host string // 127.0.0.1:PORT

	cmd  *exec.Cmd
	done chan struct{}
	log  *lockedBuffer
	once sync.Once
}

// Start runs `ollama serve` with a private copy of the tiny model and waits
// until it answers. Under -short it skips the test; without the build it fails
// the test with how to build it. The server is stopped in t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Tool(t, "ollama")
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(t.TempDir(), "models")
	if err := copyTree(filepath.Join(cache, "models"), models); err != nil {
		t.Fatalf("copying the tiny model from %s: %v; %s", cache, err, BuildHint)
	}
	home := t.TempDir()
	var lastErr error
	for range 3 {
		host, err := freeAddr()
		if err != nil {
			t.Fatalf("finding a free loopback port: %v", err)
		}
		s := &Server{URL: "http://" + host, Host: host, log: &lockedBuffer{}}
		env := append(os.Environ(),
			"HOME="+home, "OLLAMA_HOST="+host, "OLLAMA_MODELS="+models,
			"OLLAMA_NUM_PARALLEL="+strconv.Itoa(max(opts.NumParallel, 1)),
			// The copy holds exactly one model: nothing to prune, nothing to fetch.
			"OLLAMA_NOPRUNE=1", "OLLAMA_NO_CLOUD=1")
		if opts.MaxQueue > 0 {
			env = append(env, "OLLAMA_MAX_QUEUE="+strconv.Itoa(opts.MaxQueue))
		}
		env = append(env, opts.Env...)
		if lastErr = s.launch(bin, env); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("starting ollama serve: %v", lastErr)
	return nil
}

func (s *Server) launch(bin string, env []string) error {
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// A group of its own, so Stop also ends the runner processes it starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s serve: %w", bin, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(s.URL + "/api/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("ollama serve exited at start: %s", s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("ollama serve did not answer on %s within a minute: %s", s.Host, s.log.String())
		}
	}
}

// Stop kills the server and its runners by process group and waits for the server.
func (s *Server) Stop() {
	s.once.Do(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	})
}

// Log is what the server has printed so far, for failure messages.
func (s *Server) Log() string { return s.log.String() }

// Load asks the server to load the model (an empty generate request), so that
// later requests meet a loaded model rather than a loading one.
func (s *Server) Load(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{"model": Model})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/generate", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("loading %s: %w", Model, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loading %s: %s: %s", Model, resp.Status, b)
	}
	return nil
}

// RunnerPIDs lists the model runner processes the server has started: the
// children of `ollama serve`, which do the forward passes.
func (s *Server) RunnerPIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// The command name in parentheses may hold spaces: fields start after the last ')'.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(s.cmd.Process.Pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// KillRunners SIGKILLs every model runner, as an out-of-memory kill or a
// crash in llama.cpp would end it; the server itself stays up.
func (s *Server) KillRunners() (int, error) {
	pids, err := s.RunnerPIDs()
	if err != nil {
		return 0, err
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return 0, fmt.Errorf("killing runner %d: %w", pid, err)
		}
	}
	return len(pids), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// copyTree copies the model store, so each server owns its files and a test
// that deletes or re-creates a model cannot disturb another.
func copyTree(src, dst string) error {
	if _, err := os.Stat(filepath.Join(src, "manifests")); err != nil {
		return fmt.Errorf("no model store at %s", src)
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

// lockedBuffer collects the server's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
