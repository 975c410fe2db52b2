// Package benchkit holds what the benchmarks under bench/ share: the
// minimal HTTP/1.1 load generator (closed loop and open loop at a fixed
// rate), CPU accounting of a process tree from /proc, servers started in
// their own process group, and the Python side of the scoring comparisons
// (the echo and scikit-learn score.py, the Flask app that hosts a score.py
// the way azureml-inference-server-http does, gunicorn and aksml-score).
package benchkit
