package simulator

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
)

// localBackend runs a replica in process: the scoring server (a Go handler,
// or Python workers for a score.py) behind its own loopback listener.
type localBackend struct {
	srv     *scoring.Server
	sink    *scoring.JSONLinesSink // telemetry, closed after the server
	ln      net.Listener
	httpSrv *http.Server
	served  chan struct{}
	never   chan struct{}
	started bool
}

func (c *Cluster) newLocalBackend(r *replica) (backend, error) {
	t := r.tmpl
	var dc *scoring.DataCollection
	if t.CollectModelData && t.Handler == nil {
		if t.ModelDataDir == "" {
			return nil, errcode.Errorf(errcode.InvalidArgument, "replica %s: collect_model_data is on but the replica has no model data directory (ModelDataDir)", r.id)
		}
		dc = &scoring.DataCollection{Store: modelDataStore(t.ModelDataDir), Service: r.service,
			ModelVersions: map[string]string{}}
		for _, m := range t.Models {
			dc.ModelVersions[m.Name] = strconv.Itoa(m.Version)
		}
	}
	var tel *scoring.Telemetry
	var sink *scoring.JSONLinesSink
	if t.AppInsights {
		if t.ModelDataDir == "" {
			return nil, errcode.Errorf(errcode.InvalidArgument, "replica %s: enable_app_insights is on but the replica has no workspace directory (ModelDataDir) to write telemetry to", r.id)
		}
		p := scoring.TelemetryFile(t.ModelDataDir, r.service, r.id)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, errcode.Wrap(errcode.FailedPrecondition, err)
		}
		var err error
		if sink, err = scoring.NewJSONLinesSink(p); err != nil {
			return nil, errcode.Wrap(errcode.FailedPrecondition, err)
		}
		tel = &scoring.Telemetry{Sink: sink, Service: r.service, Version: r.version, Replica: r.id}
	}
	srv, err := scoring.NewServer(scoring.Config{
		Telemetry:      tel,
		DataCollection: dc,
		Handler:        t.Handler,
		EntryScript:    t.EntryScript,
		SourceDir:      t.SourceDir,
		ModelDir:       t.ModelDir,
		Interpreter:    t.Interpreter,
		Env:            t.Env,
		Workers:        t.Workers,
		ScoringTimeout: t.ScoringTimeout,
		MaxBatchSize:   t.MaxBatchSize,
		MaxBatchDelay:  t.MaxBatchDelay,
		ServiceName:    r.service,
		Logger:         c.opts.Logger,
	})
	if err != nil {
		if sink != nil {
			_ = sink.Close()
		}
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.opts.Address, "0"))
	if err != nil {
		_ = srv.Close()
		if sink != nil {
			_ = sink.Close()
		}
		return nil, errcode.Wrap(errcode.Unavailable, fmt.Errorf("replica %s cannot listen: %w", r.id, err))
	}
	return &localBackend{
		srv:     srv,
		sink:    sink,
		ln:      ln,
		httpSrv: &http.Server{Handler: faultHandler(r, srv), ReadHeaderTimeout: 10 * time.Second},
		served:  make(chan struct{}),
		never:   make(chan struct{}),
	}, nil
}

func (b *localBackend) start(ctx context.Context) (string, error) {
	b.started = true
	go func() {
		defer close(b.served)
		_ = b.httpSrv.Serve(b.ln)
	}()
	return "http://" + b.ln.Addr().String(), b.srv.Start(ctx)
}

func (b *localBackend) initDone() <-chan struct{}         { return b.srv.InitDone() }
func (b *localBackend) err() error                        { return b.srv.Err() }
func (b *localBackend) exited() <-chan struct{}           { return b.never }
func (b *localBackend) logs(tail int, init bool) []string { return b.srv.Logs(tail, init) }

func (b *localBackend) stop(graceful bool) {
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = b.httpSrv.Shutdown(ctx)
		cancel()
	}
	_ = b.httpSrv.Close()
	if b.started {
		<-b.served
	} else {
		_ = b.ln.Close()
	}
	_ = b.srv.Close()
	if b.sink != nil {
		_ = b.sink.Close()
	}
}

func (b *localBackend) stats() scoring.Stats { return b.srv.Stats() }

// statser is a backend that counts its data collection and telemetry.
type statser interface{ stats() scoring.Stats }

// failedBackend stands for an instance that could not be created.
type failedBackend struct{}

func (failedBackend) start(context.Context) (string, error) { return "", nil }
func (failedBackend) initDone() <-chan struct{}             { return nil }
func (failedBackend) err() error                            { return nil }
func (failedBackend) exited() <-chan struct{}               { return nil }
func (failedBackend) logs(int, bool) []string               { return nil }
func (failedBackend) stop(bool)                             {}

// modelDataStores share one local store per directory, so that the
// replicas of a service append to its files under one lock.
var modelDataStores sync.Map

func modelDataStore(dir string) scoring.ModelDataStore {
	st, _ := modelDataStores.LoadOrStore(dir, &scoring.LocalModelDataStore{Root: dir})
	return st.(scoring.ModelDataStore)
}
