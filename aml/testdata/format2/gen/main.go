// Command mkfmt2 writes a workspace of format 2 with this (old) aksml, and
// the listing a reader sees, for aml/testdata/format2.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aksml/aksml/aml"
	testingclock "k8s.io/utils/clock/testing"
)

func main() {
	ctx := context.Background()
	dir, src := os.Args[1], os.Args[2]
	clk := testingclock.NewFakePassiveClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ws, err := aml.Open(ctx, dir, &aml.OpenOptions{Clock: clk})
	must(err)
	var ids []string
	for i := range 6 {
		p := filepath.Join(src, fmt.Sprintf("model-%d.bin", i))
		must(os.WriteFile(p, []byte(strings.Repeat(fmt.Sprint(i), 50+i)), 0o644))
		m, err := ws.RegisterModel(ctx, fmt.Sprintf("m%d", i%2), p, &aml.RegisterModelOptions{Tags: map[string]string{"i": fmt.Sprint(i)}})
		must(err)
		ids = append(ids, m.ID())
	}
	_, err = ws.UpdateModelTags(ctx, ids[0], map[string]string{"stage": "prod"}, nil)
	must(err)
	must(ws.DeleteModel(ctx, ids[5]))
	_, err = ws.RegisterEnvironment(ctx, &aml.Environment{Name: "env", EnvironmentVariables: map[string]string{"A": "1"}})
	must(err)
	for i := range 3 {
		svc := fmt.Sprintf("svc-%d", i)
		rec, _ := json.Marshal(map[string]any{"name": svc, "models": []string{ids[i]}, "primaryKey": "k" + svc})
		must(ws.CreateWithModelRefs(ctx, "service", svc, rec, svc, []string{ids[i]}))
	}
	must(ws.Txn(ctx, func(tx *aml.Tx) error {
		for i := range 150 {
			if err := tx.Put("compute", fmt.Sprintf("target-%03d", i), []byte(strings.Repeat("x", 40))); err != nil {
				return err
			}
		}
		return nil
	}))
	must(ws.Delete(ctx, "compute", "target-007"))
	must(ws.Close())
	ws, err = aml.Open(ctx, dir, nil)
	must(err)
	defer ws.Close()
	out, err := snapshot(ctx, ws)
	must(err)
	fmt.Print(out)
}

// snapshot is aml's test helper of the same name, and the environments.
func snapshot(ctx context.Context, ws *aml.Workspace) (string, error) {
	var b strings.Builder
	models, err := ws.ListModels(ctx, nil)
	if err != nil {
		return "", err
	}
	err = ws.View(ctx, func(tx *aml.Tx) error {
		for _, m := range models {
			fmt.Fprintf(&b, "model %s %s %v\n", m.ID(), m.Digest, m.Tags)
			users, err := tx.ModelRefs(m.ID())
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "  users %v\n", users)
		}
		for _, kind := range []string{"service", "compute"} {
			recs, err := tx.List(kind)
			if err != nil {
				return err
			}
			for _, r := range recs {
				fmt.Fprintf(&b, "%s %s %q\n", kind, r.Name, r.Value)
			}
		}
		return nil
	})
	envs, err := ws.ListEnvironments(ctx)
	if err != nil {
		return "", err
	}
	for _, e := range envs {
		fmt.Fprintf(&b, "environment %s:%d %v\n", e.Name, e.Version, e.EnvironmentVariables)
	}
	return b.String(), err
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
