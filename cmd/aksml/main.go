// Command aksml is the command line of aksml, for people at a shell who
// know Azure ML v1's `az ml` commands: workspaces, models, compute targets,
// web services and endpoints, against a local AKS that outlives each
// command (aksml local start).
//
//	go install ./cmd/aksml
//	aksml workspace create
//	aksml local start
//	aksml computetarget create aks -n dev --local
//	aksml model register -n mymodel -p model.pkl
//	aksml model deploy -ct dev -m mymodel:1 -n myservice -ic inferenceconfig.json -dc deploymentconfig.json
//	aksml service run -n myservice -d '{"data": [[1, 2, 3, 4]]}'
//
// Every command is a thin layer over the public Go packages (aml, compute,
// webservice, endpoint, kube/local); docs/cli.md is the reference.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	// The local cluster re-executes this binary for the containers it
	// runs (the scoring server, the front-end): importing the package
	// installs that entry point.
	_ "github.com/aksml/aksml/kube/local"
)

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, isTerminal: isTerminal(os.Stderr)})
	stop()
	os.Exit(code)
}
