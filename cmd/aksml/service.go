package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/webservice"
)

// serviceView is a service as show and list print it: its record without
// keys, with the state the cluster reports.
type serviceView struct {
	Name             string            `json:"name"`
	ComputeTarget    string            `json:"computeName"`
	ComputeType      string            `json:"computeType"`
	State            string            `json:"state"`
	Error            string            `json:"error,omitempty"`
	ScoringURI       string            `json:"scoringUri"`
	SwaggerURI       string            `json:"swaggerUri"`
	AuthEnabled      bool              `json:"authEnabled"`
	TokenAuthEnabled bool              `json:"tokenAuthEnabled"`
	Models           []string          `json:"models"`
	Description      string            `json:"description,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	Generation       int64             `json:"generation"`
	CreatedTime      time.Time         `json:"createdTime"`
	UpdatedTime      time.Time         `json:"updatedTime"`
	DeploymentConfig json.RawMessage   `json:"deploymentConfig,omitempty"`
}

var serviceColumns = []column{{"Name", "name"}, {"ComputeName", "computeName"}, {"State", "state"}, {"ScoringUri", "scoringUri"}, {"Models", "models"}, {"UpdatedTime", "updatedTime"}}

// stateStale is the state of a service or target whose cluster lived in a
// process that has exited.
const stateStale = "Stale"

func serviceViewOf(rec webservice.Record, st *driver.ServiceStatus, stateErr error) serviceView {
	e := rec.Config.Effective()
	v := serviceView{Name: rec.Name, ComputeTarget: rec.ComputeTarget, ComputeType: rec.ComputeType,
		ScoringURI: rec.ScoringURI, SwaggerURI: rec.SwaggerURI,
		AuthEnabled: e.Auth == webservice.AuthKey, TokenAuthEnabled: e.Auth == webservice.AuthToken,
		Models: rec.ModelIDs, Description: rec.Config.Description, Tags: rec.Config.Tags, Generation: rec.Generation,
		CreatedTime: rec.CreatedTime, UpdatedTime: rec.UpdatedTime}
	if b, err := webservice.EncodeDeployConfig(rec.Config); err == nil {
		v.DeploymentConfig = b
	}
	switch {
	case st != nil:
		v.State, v.Error = string(st.State), st.Message
		if st.ScoringURI != "" {
			v.ScoringURI, v.SwaggerURI = st.ScoringURI, st.SwaggerURI
		}
	case stateErr != nil && errors.Is(stateErr, errStale):
		v.State, v.Error = stateStale, stateErr.Error()
	case stateErr != nil:
		v.State, v.Error = "Unknown", stateErr.Error()
	}
	return v
}

// errStale marks a target whose cluster is not reachable from this process.
var errStale = errors.New("stale")

// service opens service name on its compute target.
func (a *app) service(ctx context.Context, name string) (*webservice.Service, error) {
	return openOnTarget(ctx, a, "service", name, func(r webservice.Record) string { return r.ComputeTarget }, webservice.Get)
}

// openOnTarget reads the record of kind (service or endpoint) name and
// opens it on the compute target the record names.
func openOnTarget[R, H any](ctx context.Context, a *app, kind, name string, targetOf func(R) string,
	open func(context.Context, *compute.Target, string) (H, error)) (H, error) {
	var none H
	ws, err := a.workspace(ctx)
	if err != nil {
		return none, err
	}
	rec, err := compute.LoadRecord[R](ctx, ws, kind, kind, name)
	if err != nil {
		return none, err
	}
	t, err := a.target(ctx, targetOf(rec))
	if err != nil {
		return none, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	return open(ctx, t, name)
}

func (a *app) showService(ctx context.Context, svc *webservice.Service) error {
	st, err := svc.Status(ctx)
	return a.print(view{value: serviceViewOf(svc.Record(), st, err), columns: serviceColumns})
}

// deployFiles reads the models, inferenceconfig.json and
// deploymentconfig.json of a deploy or update.
func (a *app) deployInputs(ctx context.Context, modelIDs []string, icPath string) ([]*aml.Model, *aml.InferenceConfig, error) {
	ws, err := a.workspace(ctx)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	var models []*aml.Model
	for _, id := range modelIDs {
		m, err := modelByID(ctx, ws, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("-m %s: %w", id, err))
			continue
		}
		models = append(models, m)
	}
	var ic *aml.InferenceConfig
	if icPath != "" {
		if ic, err = aml.LoadInferenceConfig(icPath); err != nil {
			errs = append(errs, fmt.Errorf("--ic %s: %w", icPath, err))
		}
	}
	return models, ic, errors.Join(errs...)
}

// readDeployConfig reads a deploymentconfig.json of computeType aks.
func readDeployConfig(path string) (webservice.DeployConfig, error) {
	if path == "" {
		return webservice.DeployConfig{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return webservice.DeployConfig{}, errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("--dc: %w", err))
	}
	dc, err := webservice.DecodeDeployConfig(b)
	if err != nil {
		return dc, fmt.Errorf("--dc %s: %w", path, err)
	}
	return dc, nil
}

func (a *app) deployCmd() *cobra.Command {
	var (
		name, ic, dc, ct, description string
		models, tags                  []string
		overwrite, noWait             bool
	)
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Deploy models as a web service on a compute target",
		Long: `Deploy models as a web service (az ml model deploy). -ic names an
inferenceconfig.json (entry script, source directory, environment) and -dc a
deploymentconfig.json (computeType aks: replicas, resources, auth, probes),
the files az ml reads. The command waits until the service is Healthy,
printing its progress on stderr, unless --no-wait is given.

Entry scripts (score.py) deploy from the CLI; Go-handler models are code of a
Go program and deploy with the Go API (aml.Deploy).`,
		Example: example(
			"aksml model deploy -ct myaks -m mymodel:1 -n myservice -ic inferenceconfig.json -dc deploymentconfig.json",
			"aksml model deploy -n myservice -m mymodel:2 --ic inferenceconfig.json --dc deploymentconfig.json --ct myaks --overwrite --no-wait"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ms, icfg, err := a.deployInputs(ctx, models, ic)
			cfg, derr := readDeployConfig(dc)
			t, terr := parseTags(tags)
			if err := errors.Join(err, derr, terr); err != nil {
				return err
			}
			if icfg == nil {
				return usageError("--ic: an inferenceconfig.json is required (aksml has no no-code deployment)")
			}
			if description != "" {
				cfg.Description = description
			}
			if t != nil {
				cfg.Tags = t
			}
			if ct == "" {
				ct = cfg.ComputeTargetName
			}
			if ct == "" {
				return usageError("--ct: a compute target is required (or computeTargetName in deploymentconfig.json)")
			}
			target, err := a.target(ctx, ct)
			if err != nil {
				return err
			}
			for _, w := range icfg.Warnings() {
				fmt.Fprintf(a.stderr, "WARNING: %s\n", w)
			}
			svc, err := aml.Deploy(ctx, a.ws, name, ms, icfg, cfg, target, &aml.DeployOptions{Overwrite: overwrite})
			if err != nil {
				return err
			}
			if !noWait {
				if err := a.waitService(ctx, svc); err != nil {
					return err
				}
			}
			return a.showService(ctx, svc)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&name, "name", "n", "", "service name")
	f.StringArrayVarP(&models, "model", "m", nil, "model id NAME:VERSION (repeatable)")
	f.StringVar(&ic, "ic", "", "inferenceconfig.json (also -ic, --inference-config-file)")
	f.StringVar(&ic, "inference-config-file", "", "inferenceconfig.json")
	f.StringVar(&dc, "dc", "", "deploymentconfig.json (also -dc, --deploy-config-file)")
	f.StringVar(&dc, "deploy-config-file", "", "deploymentconfig.json")
	f.StringVar(&ct, "ct", "", "compute target (also -ct, --compute-target)")
	f.StringVar(&ct, "compute-target", "", "compute target")
	f.StringVar(&description, "description", "", "service description")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	f.BoolVar(&overwrite, "overwrite", false, "update the service if it exists")
	f.BoolVar(&noWait, "no-wait", false, "return at once, with the service's state")
	required(cmd, "name", "model")
	return cmd
}

func (a *app) serviceCmd() *cobra.Command {
	var name string
	nameFlag := func(c *cobra.Command) {
		c.Flags().StringVarP(&name, "name", "n", "", "service name")
		required(c, "name")
	}
	var listTarget string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List web services with their state",
		Example: example("aksml service list -o table", "aksml service list --query \"[?state=='Healthy'].name\""),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ws, err := a.workspace(ctx)
			if err != nil {
				return err
			}
			recs, err := webservice.List(ctx, ws)
			if err != nil {
				return err
			}
			out := []serviceView{}
			targets := map[string]*compute.Target{}
			terrs := map[string]error{}
			for _, rec := range recs {
				if listTarget != "" && rec.ComputeTarget != listTarget {
					continue
				}
				t, ok := targets[rec.ComputeTarget]
				if !ok && terrs[rec.ComputeTarget] == nil {
					t, err = a.target(ctx, rec.ComputeTarget)
					if err != nil {
						terrs[rec.ComputeTarget] = err
					}
					targets[rec.ComputeTarget] = t
				}
				if t == nil {
					out = append(out, serviceViewOf(rec, nil, staleOr(terrs[rec.ComputeTarget])))
					continue
				}
				st, err := t.Cluster().ServiceStatus(ctx, rec.Name)
				out = append(out, serviceViewOf(rec, st, err))
			}
			return a.print(view{value: out, columns: serviceColumns})
		},
	}
	list.Flags().StringVar(&listTarget, "compute-target", "", "only services on this compute target")

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a web service: state, scoring URI, models, deployment config",
		Example: example("aksml service show -n myservice", "aksml service show -n myservice --query state -o tsv"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.service(cmd.Context(), name)
			if err != nil {
				return err
			}
			return a.showService(cmd.Context(), svc)
		},
	}
	nameFlag(show)

	var tail int
	var initLogs bool
	logs := &cobra.Command{
		Use:     "get-logs",
		Short:   "Print the replicas' logs",
		Example: example("aksml service get-logs -n myservice --tail 50", "aksml service get-logs -n myservice --init"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.service(cmd.Context(), name)
			if err != nil {
				return err
			}
			lines, err := svc.Logs(cmd.Context(), tail, initLogs)
			if err != nil {
				return err
			}
			for _, l := range lines {
				fmt.Fprintln(a.stdout, l)
			}
			return nil
		},
	}
	nameFlag(logs)
	logs.Flags().IntVar(&tail, "tail", 5000, "number of lines")
	logs.Flags().BoolVar(&initLogs, "init", false, "only the output of init()")

	keys := &cobra.Command{
		Use:     "get-keys",
		Short:   "Print the primary and secondary keys of a key-auth service",
		Example: example("aksml service get-keys -n myservice", "aksml service get-keys -n myservice --query primaryKey -o tsv"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.service(cmd.Context(), name)
			if err != nil {
				return err
			}
			return a.printKeys(cmd.Context(), svc)
		},
	}
	nameFlag(keys)

	var key, keyValue string
	regen := &cobra.Command{
		Use:     "regen-key",
		Short:   "Replace the primary or secondary key (the old one is refused at once)",
		Example: example("aksml service regen-key -n myservice --key primary", "aksml service regen-key -n myservice --key secondary --key-value MYKEY"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := webservice.ParseKeyType(webservice.KeyType(key))
			if err != nil {
				return err
			}
			svc, err := a.service(cmd.Context(), name)
			if err != nil {
				return err
			}
			if err := svc.RegenKey(cmd.Context(), k, keyValue); err != nil {
				return err
			}
			return a.printKeys(cmd.Context(), svc)
		},
	}
	nameFlag(regen)
	regen.Flags().StringVar(&key, "key", "", "primary or secondary")
	regen.Flags().StringVar(&keyValue, "key-value", "", "the new key (default: a random one)")
	required(regen, "key")

	token := &cobra.Command{
		Use:     "get-access-token",
		Short:   "Print an access token for a token-auth service",
		Example: example("aksml service get-access-token -n myservice", "aksml service get-access-token -n myservice --query accessToken -o tsv"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.service(cmd.Context(), name)
			if err != nil {
				return err
			}
			t, err := svc.Token(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(view{value: map[string]any{"accessToken": t.AccessToken, "tokenType": t.TokenType,
				"refreshAfter": t.RefreshAfter.Unix(), "expiryOn": t.ExpiresOn.Unix()},
				columns: []column{{"AccessToken", "accessToken"}, {"TokenType", "tokenType"}, {"RefreshAfter", "refreshAfter"}, {"ExpiryOn", "expiryOn"}}})
		},
	}
	nameFlag(token)

	var data, file string
	runCmd := &cobra.Command{
		Use:     "run",
		Short:   "Score input on a service and print its answer",
		Example: example("aksml service run -n myservice -d '{\"data\": [[1, 2, 3, 4]]}'", "aksml service run -n myservice -f input.json", "echo '{\"data\": 1}' | aksml service run -n myservice -f -"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			input, err := a.input(data, file)
			if err != nil {
				return err
			}
			svc, err := a.service(cmd.Context(), name)
			if err != nil {
				return err
			}
			out, err := svc.Run(cmd.Context(), json.RawMessage(input))
			if err != nil {
				return err
			}
			return a.printRaw(out)
		},
	}
	nameFlag(runCmd)
	runCmd.Flags().StringVarP(&data, "input-data", "d", "", "input JSON")
	runCmd.Flags().StringVarP(&file, "input-file", "f", "", "file of input JSON (- for stdin)")

	var (
		upModels                  []string
		upIC, upDC, upDescription string
		upTags                    []string
		upNoWait                  bool
	)
	update := &cobra.Command{
		Use:   "update",
		Short: "Update a service: models, inference config, deployment config, description, tags",
		Example: example("aksml service update -n myservice --dc deploymentconfig.json",
			"aksml service update -n myservice -m mymodel:2 --ic inferenceconfig.json"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			svc, err := a.service(ctx, name)
			if err != nil {
				return err
			}
			var upd webservice.UpdateOptions
			if upDC != "" || upDescription != "" || len(upTags) > 0 {
				cfg, err := readDeployConfig(upDC)
				t, terr := parseTags(upTags)
				if err := errors.Join(err, terr); err != nil {
					return err
				}
				if upDescription != "" {
					cfg.Description = upDescription
				}
				if t != nil {
					cfg.Tags = t
				}
				upd.Config = &cfg
			}
			if len(upModels) > 0 || upIC != "" {
				ids := upModels
				if len(ids) == 0 {
					ids = svc.Record().ModelIDs
				}
				ms, ic, err := a.deployInputs(ctx, ids, upIC)
				if err != nil {
					return err
				}
				if ic == nil {
					return usageError("--ic: changing the models needs the inferenceconfig.json too")
				}
				rt, err := aml.Runtime(ctx, a.ws, name, ms, ic)
				if err != nil {
					return err
				}
				upd.Runtime = &rt
			}
			if err := svc.Update(ctx, upd); err != nil {
				return err
			}
			if !upNoWait {
				if err := a.waitService(ctx, svc); err != nil {
					return err
				}
			}
			return a.showService(ctx, svc)
		},
	}
	nameFlag(update)
	update.Flags().StringArrayVarP(&upModels, "model", "m", nil, "model id NAME:VERSION (repeatable)")
	update.Flags().StringVar(&upIC, "ic", "", "inferenceconfig.json (also -ic)")
	update.Flags().StringVar(&upDC, "dc", "", "deploymentconfig.json with the fields to change (also -dc)")
	update.Flags().StringVar(&upDescription, "description", "", "description")
	update.Flags().StringArrayVar(&upTags, "tag", nil, "tag KEY=VALUE (repeatable; replaces the tags)")
	update.Flags().BoolVar(&upNoWait, "no-wait", false, "return at once")

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a service from its cluster and the workspace",
		Example: example("aksml service delete -n myservice"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.service(cmd.Context(), name)
			if err != nil {
				return err
			}
			return svc.Delete(cmd.Context())
		},
	}
	nameFlag(del)

	return group("service", "Show, run, update and delete web services", list, show, logs, keys, regen, token, runCmd, update, del)
}

// staleOr marks an unreachable in-process target's error as stale.
func staleOr(err error) error {
	if err != nil && errcode.Of(err) == errcode.FailedPrecondition && strings.Contains(err.Error(), "ran in the process that created it") {
		return fmt.Errorf("%w: %v", errStale, err)
	}
	return err
}

// input reads -d or -f.
func (a *app) input(data, file string) ([]byte, error) {
	switch {
	case data != "" && file != "":
		return nil, usageError("give the input as -d JSON or -f FILE, not both")
	case data != "":
		return []byte(data), nil
	case file == "-":
		b, err := io.ReadAll(a.stdin)
		return b, errcode.Wrap(errcode.InvalidArgument, err)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("-f: %w", err))
		}
		return b, nil
	}
	return nil, usageError("give the input as -d JSON or -f FILE")
}

// printRaw prints a scoring answer: as it came for json (and with a
// query, through it).
func (a *app) printRaw(out json.RawMessage) error {
	if a.query == "" && (a.output == "json" || a.output == "jsonc") {
		_, err := fmt.Fprintf(a.stdout, "%s\n", strings.TrimRight(string(out), "\n"))
		return err
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		// Not JSON: print it as text.
		_, err := fmt.Fprintf(a.stdout, "%s\n", out)
		return err
	}
	return a.print(view{value: v})
}

// printKeys prints a key-auth service's primary and secondary keys.
func (a *app) printKeys(ctx context.Context, svc *webservice.Service) error {
	p, s, err := svc.Keys(ctx)
	if err != nil {
		return err
	}
	return a.print(view{value: map[string]string{"primaryKey": p, "secondaryKey": s},
		columns: []column{{"PrimaryKey", "primaryKey"}, {"SecondaryKey", "secondaryKey"}}})
}
