package simulator

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
)

// containerBackend runs a replica as a container of the deployment's image
// on the local Docker engine, its scoring port published on 127.0.0.1. The
// models are bind-mounted read-only where the image expects them, as Azure
// mounts or downloads them at start rather than baking them in.
type containerBackend struct {
	engine image.ContainerRunner
	image  string
	opts   image.RunOptions

	mu        sync.Mutex
	ctr       image.RunningContainer
	done      chan struct{}
	exitCh    chan struct{}
	initErr   error
	stopOnce  sync.Once
	stopWatch chan struct{}
	lastLogs  []string
}

func (c *Cluster) newContainerBackend(r *replica) (backend, error) {
	if c.opts.Engine == nil {
		return nil, errcode.Errorf(errcode.FailedPrecondition,
			"replica %s runs image %s as a container, but the simulator has no Docker engine (set simulator.Options.Engine)", r.id, r.tmpl.Image)
	}
	t := r.tmpl
	opts := image.RunOptions{
		Name:        "aksml-" + r.id + fmt.Sprintf("-%d", time.Now().UnixNano()%1e6),
		Env:         map[string]string{},
		CPUs:        t.CPULimit,
		MemoryBytes: int64(t.MemoryGBLimit * (1 << 30)),
		Labels:      map[string]string{"aksml.service": r.service, "aksml.version": r.version, "aksml.replica": r.id},
	}
	for k, v := range t.Env {
		opts.Env[k] = v
	}
	if t.ModelDir != "" {
		// Mount the azureml-models directory and point AZUREML_MODEL_DIR at
		// the same place inside, one model or several.
		root := t.ModelDir
		for filepath.Base(root) != "azureml-models" && root != filepath.Dir(root) {
			root = filepath.Dir(root)
		}
		rel, err := filepath.Rel(root, t.ModelDir)
		if err != nil || filepath.Base(root) != "azureml-models" {
			return nil, errcode.Errorf(errcode.InvalidArgument, "model directory %s is not inside an azureml-models directory", t.ModelDir)
		}
		opts.Mounts = []image.Mount{{Source: root, Target: image.ModelsRoot, ReadOnly: true}}
		opts.Env["AZUREML_MODEL_DIR"] = strings.TrimSuffix(image.ModelsRoot+"/"+filepath.ToSlash(rel), "/.")
	}
	return &containerBackend{engine: c.opts.Engine, image: t.Image, opts: opts,
		done: make(chan struct{}), exitCh: make(chan struct{}), stopWatch: make(chan struct{})}, nil
}

func (b *containerBackend) start(ctx context.Context) (string, error) {
	ctr, err := b.engine.RunContainer(ctx, b.image, &b.opts)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	b.ctr = ctr
	b.mu.Unlock()
	go b.watch(ctr)
	return ctr.URL(), nil
}

// watch polls the container: ready when GET / answers 200, exited when the
// engine says it stopped. It runs until stop.
func (b *containerBackend) watch(ctr image.RunningContainer) {
	client := &http.Client{Timeout: time.Second}
	ready := false
	for {
		select {
		case <-b.stopWatch:
			if !ready {
				b.finishInit(errcode.New(errcode.Unavailable, "replica stopped before it became ready"))
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		st, err := ctr.State(context.Background())
		if err == nil && !st.Running {
			b.captureLogs()
			msg := fmt.Sprintf("container exited with code %d", st.ExitCode)
			if st.OOMKilled {
				msg += " (OOMKilled: memory_gb_limit exceeded)"
			}
			if !ready {
				b.finishInit(errcode.New(errcode.Unavailable, msg))
			}
			close(b.exitCh)
			return
		}
		if ready {
			continue
		}
		resp, err := client.Get(ctr.URL() + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = true
				b.finishInit(nil)
			}
		}
	}
}

func (b *containerBackend) finishInit(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.done:
		return
	default:
	}
	b.initErr = err
	close(b.done)
}

func (b *containerBackend) initDone() <-chan struct{} { return b.done }
func (b *containerBackend) exited() <-chan struct{}   { return b.exitCh }

func (b *containerBackend) err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.initErr
}

func (b *containerBackend) captureLogs() {
	b.mu.Lock()
	ctr := b.ctr
	b.mu.Unlock()
	if ctr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := ctr.Logs(ctx, &image.LogOptions{Tail: 5000})
	if err != nil {
		return
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	b.mu.Lock()
	b.lastLogs = lines
	b.mu.Unlock()
}

// logs reads the container's log. The init view is the log up to the line
// that says the server is ready, the whole log while it is not.
func (b *containerBackend) logs(tail int, init bool) []string {
	b.mu.Lock()
	running := b.ctr != nil && b.lastLogs == nil
	b.mu.Unlock()
	if running {
		b.captureLogs()
		defer func() { b.mu.Lock(); b.lastLogs = nil; b.mu.Unlock() }()
	}
	b.mu.Lock()
	lines := append([]string(nil), b.lastLogs...)
	b.mu.Unlock()
	if init {
		for i, l := range lines {
			if strings.Contains(l, "ready") || strings.Contains(l, "Healthy") {
				lines = lines[:i+1]
				break
			}
		}
	}
	return lastN(lines, tail)
}

func (b *containerBackend) stop(graceful bool) {
	b.stopOnce.Do(func() {
		close(b.stopWatch)
		b.mu.Lock()
		ctr := b.ctr
		b.mu.Unlock()
		if ctr == nil {
			return
		}
		b.captureLogs()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		timeout := time.Duration(0)
		if graceful {
			timeout = 10 * time.Second
		}
		_ = ctr.Stop(ctx, timeout)
		_ = ctr.Remove(ctx)
	})
}
