package handler

import "context"

// Handler is a Go-native model: the Go counterpart of a score.py entry script.
//
// Init runs once per replica before the replica reports ready, with the
// directory that holds the deployment's models (the AZUREML_MODEL_DIR layout:
// one model → MODELDIR is azureml-models/NAME/VERSION; several →
// azureml-models with NAME/VERSION below it). An error from Init keeps the
// replica from ever becoming ready, as an exception in init() does.
//
// Run is called for every POST /score with the raw request body; it may be
// called concurrently up to the replica's concurrency. The returned bytes are
// the response body (application/json). An error becomes a 500 from the
// replica, which the front-end reports to callers as 502.
type Handler interface {
	Init(ctx context.Context, modelDir string) error
	Run(ctx context.Context, input []byte) ([]byte, error)
}

// New builds a fresh Handler for one replica. Inference configs carry a
// New rather than a Handler because every replica has its own instance.
type New func() Handler
