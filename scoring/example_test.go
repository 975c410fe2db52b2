package scoring_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/aksml/aksml/scoring"
)

// A Go-native model served by a replica: Init runs once, Run per request.
func ExampleServer() {
	upper := scoring.HandlerFunc(func(ctx context.Context, input []byte) ([]byte, error) {
		return []byte(fmt.Sprintf("%q", strings.ToUpper(string(input)))), nil
	})
	srv, err := scoring.NewServer(scoring.Config{Handler: func() scoring.Handler { return upper }})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ctx := context.Background()
	if err := srv.Start(ctx); err != nil {
		panic(err)
	}
	if err := srv.Wait(ctx); err != nil {
		panic(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- scoring.Serve(serveCtx, ln, srv) }()

	resp, err := http.Post("http://"+ln.Addr().String()+"/score", "text/plain", strings.NewReader("hello"))
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	resp, err = http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	stop()
	fmt.Println(<-done)
	// Output:
	// 200 "HELLO"
	// 200 Healthy
	// <nil>
}

// Errors from Run become 500 responses with the generic JSON body of an
// exception in run(); the error itself goes to the replica's log.
func ExampleHandlerFunc() {
	h := scoring.HandlerFunc(func(ctx context.Context, input []byte) ([]byte, error) {
		return nil, fmt.Errorf("cannot score %s", input)
	})
	srv, _ := scoring.NewServer(scoring.Config{Handler: func() scoring.Handler { return h }})
	defer srv.Close()
	_ = srv.Start(context.Background())
	<-srv.InitDone()

	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest("POST", "/score", strings.NewReader("[1]"))
	srv.ServeHTTP(rec, req)
	fmt.Println(rec.status, rec.body.String())
	fmt.Println(strings.Contains(strings.Join(srv.Logs(0, false), "\n"), "cannot score [1]"))
	// Output:
	// 500 {"message":"An unexpected error occurred in scoring script. Check the logs for more info."}
	// true
}

type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.status = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
