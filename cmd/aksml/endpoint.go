package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/webservice"
)

// endpointView is an endpoint as show and list print it.
type endpointView struct {
	Name             string            `json:"name"`
	ComputeTarget    string            `json:"computeName"`
	ComputeType      string            `json:"computeType"`
	State            string            `json:"state"`
	Error            string            `json:"error,omitempty"`
	ScoringURI       string            `json:"scoringUri"`
	AuthEnabled      bool              `json:"authEnabled"`
	TokenAuthEnabled bool              `json:"tokenAuthEnabled"`
	Description      string            `json:"description,omitempty"`
	Tags             map[string]string `json:"tags,omitempty"`
	Versions         []versionView     `json:"versions"`
	CreatedTime      time.Time         `json:"createdTime"`
}

type versionView struct {
	Name              string   `json:"versionName"`
	State             string   `json:"state,omitempty"`
	TrafficPercentile float64  `json:"trafficPercentile"`
	IsDefault         bool     `json:"isDefault"`
	VersionType       string   `json:"versionType"`
	MirrorPercent     float64  `json:"mirrorPercent,omitempty"`
	Models            []string `json:"models"`
	ScoringURI        string   `json:"scoringUri"`
}

var endpointColumns = []column{{"Name", "name"}, {"ComputeName", "computeName"}, {"State", "state"}, {"ScoringUri", "scoringUri"}, {"Versions", "versionNames"}}

func endpointViewOf(rec endpoint.Record, st *driver.ServiceStatus, stateErr error) map[string]any {
	v := endpointView{Name: rec.Name, ComputeTarget: rec.ComputeTarget, ComputeType: rec.ComputeType, ScoringURI: rec.ScoringURI,
		AuthEnabled: rec.Auth == webservice.AuthKey, TokenAuthEnabled: rec.Auth == webservice.AuthToken,
		Description: rec.Description, Tags: rec.Tags, CreatedTime: rec.CreatedTime, Versions: []versionView{}}
	states := map[string]string{}
	switch {
	case st != nil:
		v.State, v.Error = string(st.State), st.Message
		for _, vs := range st.Versions {
			states[vs.Name] = string(vs.State)
		}
	case stateErr != nil && errors.Is(stateErr, errStale):
		v.State, v.Error = stateStale, stateErr.Error()
	case stateErr != nil:
		v.State, v.Error = "Unknown", stateErr.Error()
	}
	var names []string
	for _, vr := range rec.Versions {
		names = append(names, vr.Config.VersionName)
		v.Versions = append(v.Versions, versionView{Name: vr.Config.VersionName, State: states[vr.Config.VersionName],
			TrafficPercentile: vr.Config.TrafficPercentile, IsDefault: vr.Config.IsDefault, VersionType: string(vr.Type),
			MirrorPercent: vr.MirrorPercent, Models: vr.ModelIDs, ScoringURI: vr.ScoringURI})
	}
	// The table shows the version names in one column; JSON keeps the
	// full versions.
	m := structToMap(v)
	m["versionNames"] = names
	return m
}

// structToMap turns a view into a JSON object through its JSON form.
func structToMap(v any) map[string]any {
	var m map[string]any
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &m)
	return m
}

// endpoint opens endpoint name on its compute target.
func (a *app) endpoint(ctx context.Context, name string) (*endpoint.Endpoint, error) {
	return openOnTarget(ctx, a, "endpoint", name, func(r endpoint.Record) string { return r.ComputeTarget }, endpoint.Get)
}

func (a *app) showEndpoint(ctx context.Context, e *endpoint.Endpoint) error {
	st, err := e.Status(ctx)
	return a.print(view{value: endpointViewOf(e.Record(), st, err), columns: endpointColumns})
}

// versionFlags are the flags of create and create-version.
type versionFlags struct {
	models                   []string
	ic, dc, version          string
	traffic                  float64
	isDefault, isControl     bool
	trafficSet, defaultSet   bool
	controlSet, descriptionS bool
	description              string
	tags                     []string
}

func (vf *versionFlags) add(c *cobra.Command, withFiles bool) {
	f := c.Flags()
	if withFiles {
		f.StringArrayVarP(&vf.models, "model", "m", nil, "model id NAME:VERSION (repeatable)")
		f.StringVar(&vf.ic, "ic", "", "inferenceconfig.json (also -ic)")
		f.StringVar(&vf.dc, "dc", "", "deploymentconfig.json of computeType aksendpoint (also -dc)")
	}
	f.StringVar(&vf.version, "version-name", "", "version name")
	f.Float64Var(&vf.traffic, "traffic-percentile", 0, "share of the endpoint's traffic, 0 to 100")
	f.BoolVar(&vf.isDefault, "is-default", false, "make the version the default (it takes what no version claims)")
	f.BoolVar(&vf.isControl, "is-control-version", false, "make the version the control (the others are treatments)")
}

// config reads a version's deploymentconfig.json and applies the flags.
func (vf *versionFlags) config(c *cobra.Command) (endpoint.VersionConfig, error) {
	var cfg endpoint.VersionConfig
	if vf.dc != "" {
		b, err := os.ReadFile(vf.dc)
		if err != nil {
			return cfg, errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("--dc: %w", err))
		}
		// The file's version fields are checked with the flags applied,
		// by endpoint.Create and CreateVersion.
		f, err := webservice.DecodeDeploymentConfig(b)
		if err != nil {
			return cfg, fmt.Errorf("--dc %s: %w", vf.dc, err)
		}
		if f.ComputeType != webservice.ComputeTypeAKSEndpoint && f.ComputeType != webservice.ComputeTypeAKS {
			return cfg, errcode.Errorf(errcode.InvalidArgument, "--dc %s: computeType %q: an endpoint version needs aksendpoint (or aks)", vf.dc, f.ComputeType)
		}
		cfg = endpoint.VersionConfig{DeployConfig: f.DeployConfig, VersionName: f.VersionName, TrafficPercentile: f.TrafficPercentile}
	}
	if c.Flags().Changed("version-name") {
		cfg.VersionName = vf.version
	}
	if c.Flags().Changed("traffic-percentile") {
		cfg.TrafficPercentile = vf.traffic
	}
	if c.Flags().Changed("is-default") {
		cfg.IsDefault = vf.isDefault
	}
	if c.Flags().Changed("is-control-version") {
		cfg.IsControlVersion = vf.isControl
	}
	return cfg, nil
}

func (a *app) endpointCmd() *cobra.Command {
	var name, ct string
	var noWait bool
	nameFlag := func(c *cobra.Command) {
		c.Flags().StringVarP(&name, "name", "n", "", "endpoint name")
		required(c, "name")
	}
	wait := func(ctx context.Context, e *endpoint.Endpoint) error {
		if noWait {
			return nil
		}
		return e.Wait(ctx)
	}
	runtime := func(ctx context.Context, vf *versionFlags) (webservice.Runtime, error) {
		ms, ic, err := a.deployInputs(ctx, vf.models, vf.ic)
		if err != nil {
			return webservice.Runtime{}, err
		}
		if ic == nil {
			return webservice.Runtime{}, usageError("--ic: an inferenceconfig.json is required")
		}
		return aml.Runtime(ctx, a.ws, name+"-"+vf.version, ms, ic)
	}

	var cf versionFlags
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an endpoint with its first version (the default)",
		Example: example("aksml endpoint realtime create -n myep --ct dev -m mymodel:1 --ic inferenceconfig.json --dc epconfig.json --version-name ver1",
			"aksml endpoint realtime create -n myep -ct dev -m mymodel:1 -ic inferenceconfig.json -dc epconfig.json --version-name ver1 --traffic-percentile 100"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := cf.config(cmd)
			if err != nil {
				return err
			}
			rt, err := runtime(ctx, &cf)
			if err != nil {
				return err
			}
			if ct == "" {
				ct = cfg.ComputeTargetName
			}
			if ct == "" {
				return usageError("--ct: a compute target is required (or computeTargetName in deploymentconfig.json)")
			}
			t, err := a.target(ctx, ct)
			if err != nil {
				return err
			}
			e, err := endpoint.Create(ctx, t, name, cfg, rt, &endpoint.CreateOptions{Progress: a.progressWriter()})
			if err != nil {
				return err
			}
			if err := wait(ctx, e); err != nil {
				return err
			}
			return a.showEndpoint(ctx, e)
		},
	}
	nameFlag(create)
	cf.add(create, true)
	create.Flags().StringVar(&ct, "ct", "", "compute target (also -ct)")
	create.Flags().BoolVar(&noWait, "no-wait", false, "return at once")

	var cv versionFlags
	createVersion := &cobra.Command{
		Use:     "create-version",
		Short:   "Add a version to an endpoint",
		Example: example("aksml endpoint realtime create-version -n myep --version-name ver2 -m mymodel:2 --ic inferenceconfig.json --dc epconfig.json --traffic-percentile 20"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, err := cv.config(cmd)
			if err != nil {
				return err
			}
			e, err := a.endpoint(ctx, name)
			if err != nil {
				return err
			}
			cv.version = cfg.VersionName
			rt, err := runtime(ctx, &cv)
			if err != nil {
				return err
			}
			if err := e.CreateVersion(ctx, cfg, rt); err != nil {
				return err
			}
			if err := wait(ctx, e); err != nil {
				return err
			}
			return a.showEndpoint(ctx, e)
		},
	}
	nameFlag(createVersion)
	cv.add(createVersion, true)
	createVersion.Flags().BoolVar(&noWait, "no-wait", false, "return at once")

	var uv versionFlags
	var mirror float64
	var uvDC string
	updateVersion := &cobra.Command{
		Use:   "update-version",
		Short: "Change a version: traffic, default, control, mirroring, deployment config",
		Example: example("aksml endpoint realtime update-version -n myep --version-name ver2 --traffic-percentile 50",
			"aksml endpoint realtime update-version -n myep --version-name ver2 --is-default --is-control-version"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			e, err := a.endpoint(ctx, name)
			if err != nil {
				return err
			}
			var upd endpoint.VersionUpdate
			fl := cmd.Flags()
			if fl.Changed("traffic-percentile") {
				upd.TrafficPercentile = &uv.traffic
			}
			if fl.Changed("is-default") {
				upd.IsDefault = &uv.isDefault
			}
			if fl.Changed("is-control-version") {
				upd.IsControlVersion = &uv.isControl
			}
			if fl.Changed("mirror-percentile") {
				upd.MirrorPercent = &mirror
			}
			if uvDC != "" {
				cfg, err := readVersionDeployConfig(uvDC)
				if err != nil {
					return err
				}
				upd.Config = &cfg
			}
			if err := e.UpdateVersion(ctx, uv.version, upd); err != nil {
				return err
			}
			if err := wait(ctx, e); err != nil {
				return err
			}
			return a.showEndpoint(ctx, e)
		},
	}
	nameFlag(updateVersion)
	uv.add(updateVersion, false)
	updateVersion.Flags().Float64Var(&mirror, "mirror-percentile", 0, "copy this share of live traffic to the version (answers discarded)")
	updateVersion.Flags().StringVar(&uvDC, "dc", "", "deploymentconfig.json with the fields to change (also -dc)")
	updateVersion.Flags().BoolVar(&noWait, "no-wait", false, "return at once")
	required(updateVersion, "version-name")

	var dvName string
	deleteVersion := &cobra.Command{
		Use:     "delete-version",
		Short:   "Remove a version (not the default)",
		Example: example("aksml endpoint realtime delete-version -n myep --version-name ver1"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.endpoint(cmd.Context(), name)
			if err != nil {
				return err
			}
			if err := e.DeleteVersion(cmd.Context(), dvName); err != nil {
				return err
			}
			return a.showEndpoint(cmd.Context(), e)
		},
	}
	nameFlag(deleteVersion)
	deleteVersion.Flags().StringVar(&dvName, "version-name", "", "version name")
	required(deleteVersion, "version-name")

	show := &cobra.Command{
		Use:     "show",
		Short:   "Show an endpoint and its versions",
		Example: example("aksml endpoint realtime show -n myep", "aksml endpoint realtime show -n myep --query 'versions[].[versionName,trafficPercentile]' -o tsv"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.endpoint(cmd.Context(), name)
			if err != nil {
				return err
			}
			return a.showEndpoint(cmd.Context(), e)
		},
	}
	nameFlag(show)

	list := &cobra.Command{
		Use:     "list",
		Short:   "List endpoints",
		Example: example("aksml endpoint realtime list -o table"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ws, err := a.workspace(ctx)
			if err != nil {
				return err
			}
			recs, err := endpoint.List(ctx, ws)
			if err != nil {
				return err
			}
			out := []map[string]any{}
			for _, rec := range recs {
				t, err := a.target(ctx, rec.ComputeTarget)
				if err != nil {
					out = append(out, endpointViewOf(rec, nil, staleOr(err)))
					continue
				}
				st, err := t.Cluster().ServiceStatus(ctx, rec.Name)
				out = append(out, endpointViewOf(rec, st, err))
			}
			return a.print(view{value: out, columns: endpointColumns})
		},
	}

	var authEnabled, tokenAuth bool
	var upDescription string
	var upTags []string
	update := &cobra.Command{
		Use:     "update",
		Short:   "Change an endpoint's auth, description or tags",
		Example: example("aksml endpoint realtime update -n myep --token-auth-enabled true", "aksml endpoint realtime update -n myep --description 'fraud model A/B'"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.endpoint(cmd.Context(), name)
			if err != nil {
				return err
			}
			var upd endpoint.Update
			fl := cmd.Flags()
			if fl.Changed("auth-enabled") {
				upd.AuthEnabled = &authEnabled
			}
			if fl.Changed("token-auth-enabled") {
				upd.TokenAuthEnabled = &tokenAuth
			}
			if fl.Changed("description") {
				upd.Description = &upDescription
			}
			if upd.Tags, err = parseTags(upTags); err != nil {
				return err
			}
			if err := e.Update(cmd.Context(), upd); err != nil {
				return err
			}
			return a.showEndpoint(cmd.Context(), e)
		},
	}
	nameFlag(update)
	update.Flags().BoolVar(&authEnabled, "auth-enabled", false, "key authentication on or off")
	update.Flags().BoolVar(&tokenAuth, "token-auth-enabled", false, "token authentication on or off")
	update.Flags().StringVar(&upDescription, "description", "", "description")
	update.Flags().StringArrayVar(&upTags, "tag", nil, "tag KEY=VALUE (repeatable; replaces the tags)")

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete an endpoint and every version",
		Example: example("aksml endpoint realtime delete -n myep"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.endpoint(cmd.Context(), name)
			if err != nil {
				return err
			}
			return e.Delete(cmd.Context())
		},
	}
	nameFlag(del)

	realtime := group("realtime", "Real-time endpoints with versions and traffic rules (AksEndpoint)",
		create, show, list, update, del, createVersion, updateVersion, deleteVersion)
	return group("endpoint", "Endpoints", realtime)
}

// readVersionDeployConfig reads the deploy-config part of an endpoint
// version's deploymentconfig.json (computeType aks or aksendpoint).
func readVersionDeployConfig(path string) (webservice.DeployConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return webservice.DeployConfig{}, errcode.Wrap(errcode.InvalidArgument, fmt.Errorf("--dc: %w", err))
	}
	f, err := webservice.DecodeDeploymentConfig(b)
	if err != nil {
		return webservice.DeployConfig{}, fmt.Errorf("--dc %s: %w", path, err)
	}
	return f.DeployConfig, nil
}
