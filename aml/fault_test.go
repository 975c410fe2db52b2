package aml

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/scoring"
	"github.com/aksml/aksml/simulator"
	"github.com/aksml/aksml/webservice"
)

// The kill-at-random-points test: a child process registers models,
// deploys, updates and deletes services and deletes models against one
// workspace, as fast as it can, until the parent SIGKILLs it after a random
// delay. After every kill the parent reopens the workspace and checks that
// it is consistent. AKSML_KILLS sets the number of kills (default 200) and
// AKSML_KILL_SECONDS the time bound (default 40 s).

// chaosChild is the child's part: random operations until killed.
func chaosChild(dir, src string) int {
	ctx := context.Background()
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "chaos child: %s: %v\n", what, err)
		return 2
	}
	ws, err := Open(ctx, dir, nil)
	if err != nil {
		return fail("open", err)
	}
	defer ws.Close()
	sim := simulator.New(nil)
	defer sim.Close()
	if err := ws.Delete(ctx, "compute", "aks"); err != nil && !errors.Is(err, errcode.NotFound) {
		return fail("delete old target record", err)
	}
	target, err := compute.Create(ctx, ws, "aks", compute.ProvisioningConfig{ClusterPurpose: compute.DevTest}, &compute.CreateOptions{Provider: sim})
	if err != nil {
		return fail("create target", err)
	}
	if err := target.Wait(ctx); err != nil {
		return fail("wait for target", err)
	}
	ic := &InferenceConfig{Handler: func() scoring.Handler { return echoHandler{} }}
	dc := webservice.DeployConfig{NumReplicas: 1, AuthEnabled: new(false)}
	mine := map[string]*webservice.Service{}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	pickModels := func() []*Model {
		all, err := ws.ListModels(ctx, nil)
		if err != nil || len(all) == 0 {
			return nil
		}
		n := 1 + rng.IntN(min(3, len(all)))
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		return all[:n]
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		switch op := rng.IntN(10); {
		case op < 3: // register
			p := filepath.Join(src, fmt.Sprintf("%d-%d", os.Getpid(), i))
			if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
				return fail("write model file", err)
			}
			if _, err := ws.RegisterModel(ctx, fmt.Sprintf("m%d", rng.IntN(4)), p, nil); err != nil {
				return fail("register", err)
			}
		case op < 6: // deploy
			models := pickModels()
			if models == nil {
				continue
			}
			name := fmt.Sprintf("svc-%d", rng.IntN(8))
			svc, err := Deploy(ctx, ws, name, models, ic, dc, target, nil)
			switch {
			case errors.Is(err, errcode.AlreadyExists), errors.Is(err, errcode.NotFound):
				// Taken, or a picked model was deleted meanwhile.
			case err != nil:
				return fail("deploy", err)
			default:
				mine[name] = svc
			}
		case op < 8: // update one of this child's services
			for _, svc := range mine {
				models := pickModels()
				if models == nil {
					break
				}
				svc.WaitForDeployment(ctx)
				rt, err := Runtime(ctx, ws, svc.Name(), models, ic)
				if err == nil {
					err = svc.Update(ctx, webservice.UpdateOptions{Runtime: &rt})
				}
				if err != nil && !errors.Is(err, errcode.NotFound) && !errors.Is(err, errcode.Conflict) {
					return fail("update", err)
				}
				break
			}
		case op < 9: // delete a service, possibly another child's
			recs, err := webservice.List(ctx, ws)
			if err != nil {
				return fail("list services", err)
			}
			if len(recs) == 0 {
				continue
			}
			name := recs[rng.IntN(len(recs))].Name
			svc := mine[name]
			if svc == nil {
				if svc, err = webservice.Get(ctx, target, name); err != nil {
					return fail("get service", err)
				}
			}
			if err := svc.Delete(ctx); err != nil {
				return fail("delete service", err)
			}
			delete(mine, name)
		default: // delete a model; refused while a service uses it
			all, err := ws.ListModels(ctx, nil)
			if err != nil {
				return fail("list models", err)
			}
			if len(all) > 0 {
				err := ws.DeleteModel(ctx, all[rng.IntN(len(all))].ID())
				if err != nil && !errors.Is(err, errcode.FailedPrecondition) {
					return fail("delete model", err)
				}
			}
		}
	}
}

// checkConsistent checks a workspace after a kill: every service record's
// models exist and are referenced by it (so DeleteModel refuses them),
// every reference belongs to a recorded service or endpoint, and every
// model's files are in the blob store intact. GC then runs.
func checkConsistent(ctx context.Context, ws *Workspace) error {
	var errs []error
	err := ws.View(ctx, func(tx *Tx) error {
		recs, err := tx.List("service")
		if err != nil {
			return err
		}
		users := map[string]bool{}
		for _, r := range recs {
			var rec struct {
				Models []string `json:"models"`
			}
			if err := json.Unmarshal(r.Value, &rec); err != nil {
				errs = append(errs, fmt.Errorf("service %s: %v", r.Name, err))
				continue
			}
			users[r.Name] = true
			for _, id := range rec.Models {
				name, v, _ := ParseModelID(id)
				if _, err := tx.Model(name, v); err != nil {
					errs = append(errs, fmt.Errorf("service %s uses model %s: %v", r.Name, id, err))
				}
				refs, _ := tx.ModelRefs(id)
				if !slices.Contains(refs, r.Name) {
					errs = append(errs, fmt.Errorf("service %s uses model %s without a reference to it", r.Name, id))
				}
			}
		}
		return tx.tx.Bucket(bktModelRefs).ForEach(func(k, v []byte) error {
			if !users[string(k)] {
				errs = append(errs, fmt.Errorf("model references of %q, which is not recorded", k))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if err := ws.Check(ctx); err != nil {
		errs = append(errs, err)
	}
	if _, err := ws.GC(ctx); err != nil {
		errs = append(errs, fmt.Errorf("GC: %w", err))
	}
	return errors.Join(errs...)
}

func TestIntegrationKillAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hundreds of processes")
	}
	t.Parallel()
	kills, limit := 200, 40*time.Second
	if v, err := strconv.Atoi(os.Getenv("AKSML_KILLS")); err == nil && v > 0 {
		kills = v
	}
	if v, err := strconv.Atoi(os.Getenv("AKSML_KILL_SECONDS")); err == nil && v > 0 {
		limit = time.Duration(v) * time.Second
	}
	const workers = 2 // each on its own workspace
	var done, consistent, dataLoss atomic.Int64
	var opened atomic.Int64
	deadline := time.Now().Add(limit)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			dir, src := t.TempDir(), t.TempDir()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for done.Load() < int64(kills) && time.Now().Before(deadline) {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "AKSML_AML_CHILD=chaos", "AKSML_DIR="+dir, "AKSML_SRC="+src)
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Error(err)
					return
				}
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Error(err)
					return
				}
				// Wait for the child to have opened the workspace, then let
				// it run for a random time (the kill point is what is random).
				line, _ := bufio.NewReader(out).ReadString('\n')
				if line == "ready\n" {
					opened.Add(1)
					time.Sleep(time.Duration(rng.IntN(60_000)) * time.Microsecond)
				}
				cmd.Process.Signal(syscall.SIGKILL)
				err = cmd.Wait()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Errorf("child ended with %v before the kill, want killed; stderr:\n%s", err, stderr.String())
					return
				}
				done.Add(1)
				ws, err := Open(ctx, dir, nil)
				if errors.Is(err, errcode.DataLoss) {
					dataLoss.Add(1)
				}
				if err != nil {
					t.Errorf("reopen after kill %d: %v", done.Load(), err)
					return
				}
				err = checkConsistent(ctx, ws)
				ws.Close()
				if err != nil {
					t.Errorf("after kill %d: %v", done.Load(), err)
					return
				}
				consistent.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("kills: %d (children that had opened the workspace: %d); consistent reopenings: %d; DataLoss: %d; %v",
		done.Load(), opened.Load(), consistent.Load(), dataLoss.Load(), limit)
	if done.Load() < 20 {
		t.Errorf("only %d kills in %v", done.Load(), limit)
	}
}
