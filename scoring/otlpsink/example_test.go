package otlpsink_test

import (
	"context"
	"log"

	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/scoring/otlpsink"
)

// A replica whose request telemetry goes to an OpenTelemetry collector.
func ExampleNew() {
	ctx := context.Background()
	sink, err := otlpsink.New(ctx, otlpsink.Options{Endpoint: "http://otel-collector:4318", ServiceName: "diabetes"})
	if err != nil {
		log.Fatal(err)
	}
	// The sink outlives the replicas that share it.
	defer sink.Shutdown(ctx)
	srv, err := scoring.NewServer(scoring.Config{
		EntryScript: "score.py",
		SourceDir:   "/app/src",
		Telemetry:   &scoring.Telemetry{Sink: sink, Version: "blue"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	// srv.Start(ctx); scoring.Serve(ctx, ln, srv) ...
}
