// Command aksml-score is the aksml replica server for Python entry scripts:
// a faster stand-in for azmlinfsrv (azureml-inference-server-http) that runs
// the same score.py unchanged. It is static (build with CGO_ENABLED=0) so it
// can be copied into any image that has a Python interpreter.
//
//	aksml-score --entry_script score.py --model_dir ./azureml-models/m/1 --port 5001 --worker_count 2
//
// See package scoring (Run) for every flag.
package main

import "github.com/aksml/aksml/scoring"

func main() { scoring.Main(nil) }
