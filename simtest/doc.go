// Package simtest gives a Go test an AKS of its own in one call, as
// net/http/httptest gives it a server: a workspace in t.TempDir(), an
// in-process simulator and a dev-test compute target on it, all closed by
// t.Cleanup.
//
//	func TestScore(t *testing.T) {
//		env := simtest.New(t, nil)
//		svc := env.DeployHandler("double", double)         // a Go handler
//		// or: svc := env.DeployScript("iris", "testdata/src", "score.py", model)
//		out, err := svc.Run(env.Ctx, `{"data": [1, 2]}`)
//		…
//	}
//
// The deploy helpers wait until the service is Healthy, fail the test with
// the deployment's error otherwise, and delete the service when the test
// ends. At the end the environment also fails the test when something was
// left behind:
//
//   - a service still deployed on the target (deployed with aml.Deploy and
//     never deleted): its replicas would outlive the test;
//   - a child process of the test still running once the simulator is
//     closed (a scoring worker or anything else the test started);
//   - a goroutine running aksml code that was not there when New was called
//     and has not ended a few seconds after the simulator closed.
//
// The process and goroutine checks are process-wide, so they run only when
// no other simtest environment is open (tests calling t.Parallel do not
// report each other's work as leaks).
package simtest
