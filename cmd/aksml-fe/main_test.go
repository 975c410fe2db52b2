package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aksml/aksml/kube/kubetest"
)

// TestIntegrationFrontEnd runs the front-end against a real control plane
// from a kubeconfig: it syncs, answers 404 for an unknown service, and
// stops cleanly when its context ends.
func TestIntegrationFrontEnd(t *testing.T) {
	cp := kubetest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--kubeconfig", cp.Kubeconfig, "--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0"}, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("aksml-fe exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("aksml-fe did not sync")
	}
	resp, err := http.Post("http://"+addr+"/api/v1/service/nobody/score", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown service: %d %q, want 404", resp.StatusCode, b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("aksml-fe after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("aksml-fe did not stop")
	}
}

func TestBadFlags(t *testing.T) {
	t.Parallel()
	if err := run(context.Background(), []string{"--nope"}, nil); err == nil {
		t.Error("an unknown flag was accepted")
	}
	if err := run(context.Background(), []string{"--kubeconfig", "/nonexistent"}, nil); err == nil {
		t.Error("a missing kubeconfig was accepted")
	}
	for _, p := range []string{"0", "65536", "-1"} {
		err := run(context.Background(), []string{"--https-port", p}, nil)
		if err == nil || !strings.Contains(err.Error(), "https-port "+p+" must be a TCP port") {
			t.Errorf("--https-port %s: %v, want refused naming the flag and the rule", p, err)
		}
	}
}
