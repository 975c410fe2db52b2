package fe_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/aksml/aksml/kube/fe"
)

// A front end that has not yet read the cluster does not answer a
// service 404 as if it did not exist: the caller's request waits until the
// routing table is installed, and is answered from it.
func TestServeAnswersOnceTheRoutesAreSynced(t *testing.T) {
	client := fake.NewClientset()
	listing, release := make(chan struct{}, 1), make(chan struct{})
	client.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		select {
		case listing <- struct{}{}:
		default:
		}
		<-release // the watches cannot sync until released
		return false, nil, nil
	})
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- fe.Serve(ctx, client, &fe.ServeOptions{Listen: "127.0.0.1:0", ListenTLS: "127.0.0.1:0",
			Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	// The listening address, from the log.
	var addr string
	poll(t, "the serving log line", func() string {
		for _, line := range strings.Split(logs.String(), "\n") {
			var e struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "aksml-fe: serving" && e.Listen != "" {
				addr = e.Listen
				return ""
			}
		}
		return "not logged yet: " + logs.String()
	})
	select {
	case <-listing:
	case err := <-done:
		t.Fatalf("Serve stopped: %v", err)
	}
	type answer struct {
		code int
		err  error
	}
	answered := make(chan answer, 1)
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	go func() {
		resp, err := hc.Post("http://"+addr+"/api/v1/service/iris/score", "application/json", strings.NewReader(`{}`))
		if err != nil {
			answered <- answer{0, err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- answer{resp.StatusCode, nil}
	}()
	// Before the routing table is installed, no answer: a front end that
	// served at once answered 404 within a millisecond.
	select {
	case a := <-answered:
		t.Fatalf("answered %d (%v) before the routes were read from the cluster", a.code, a.err)
	case <-time.After(200 * time.Millisecond):
	}
	unblock()
	select {
	case a := <-answered:
		// No service iris in the cluster: now 404 is the truth.
		if a.err != nil || a.code != http.StatusNotFound {
			t.Errorf("after the sync: %d %v, want 404 for a service the cluster does not have", a.code, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer 10 s after the routes were synced")
	}
}
