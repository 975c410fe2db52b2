package scoring

import (
	"net/http"

	"github.com/aksml/aksml/scoring/handler"
)

// Handler is a Go-native model: the Go counterpart of a score.py entry
// script (see handler.Handler, of which it is an alias).
type Handler = handler.Handler

// RawHTTPHandler is an optional interface for a Handler that needs the whole
// HTTP request and sets its own status code and headers, like a score.py whose
// run is decorated with @rawhttp and returns an AMLResponse. When a Handler
// implements it, POST /score (and GET /score) calls ServeScore instead of Run.
type RawHTTPHandler interface {
	Handler
	ServeScore(w http.ResponseWriter, r *http.Request)
}

// NewHandler builds a fresh Handler for one replica. Inference configs carry a
// NewHandler rather than a Handler because every replica has its own instance.
type NewHandler = handler.New
