package main

import (
	"context"
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/aksml/aksml/aml"
	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/endpoint"
	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/webservice"
)

// workspaceInfo is what workspace show prints.
type workspaceInfo struct {
	Dir            string `json:"dir"`
	Models         int    `json:"models"`
	ComputeTargets int    `json:"computeTargets"`
	Services       int    `json:"services"`
	Endpoints      int    `json:"endpoints"`
	LocalCluster   string `json:"localCluster"`
}

var workspaceColumns = []column{{"Dir", "dir"}, {"Models", "models"}, {"ComputeTargets", "computeTargets"}, {"Services", "services"}, {"Endpoints", "endpoints"}, {"LocalCluster", "localCluster"}}

func (a *app) workspaceCmd() *cobra.Command {
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create the workspace directory (models, targets, services and the local cluster's data live there)",
		Example: example("aksml workspace create -w ./ws", "AKSML_WORKSPACE=./ws aksml workspace create"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.workspaceDir()
			if err != nil {
				return err
			}
			if _, err := a.openWorkspace(cmd.Context(), dir); err != nil {
				return err
			}
			return a.showWorkspace(cmd.Context())
		},
	}
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show the workspace: its directory and what it holds",
		Example: example("aksml workspace show -o table"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := a.workspace(cmd.Context()); err != nil {
				return err
			}
			return a.showWorkspace(cmd.Context())
		},
	}
	return group("workspace", "Create or show the workspace, or print its CA certificate", create, show, a.caBundleCmd())
}

func (a *app) showWorkspace(ctx context.Context) error {
	ws := a.ws
	models, err := ws.ListModels(ctx, nil)
	if err != nil {
		return err
	}
	targets, err := compute.List(ctx, ws)
	if err != nil {
		return err
	}
	svcs, err := webservice.List(ctx, ws)
	if err != nil {
		return err
	}
	eps, err := endpoint.List(ctx, ws)
	if err != nil {
		return err
	}
	info := workspaceInfo{Dir: ws.Dir(), Models: len(models), ComputeTargets: len(targets), Services: len(svcs), Endpoints: len(eps),
		LocalCluster: a.localState(ctx)}
	return a.print(view{value: info, columns: workspaceColumns})
}

// modelView is a model as show and list print it.
type modelView struct {
	*aml.Model
	ID string `json:"id"`
}

var modelColumns = []column{{"Name", "name"}, {"Version", "version"}, {"Framework", "framework"}, {"Size", "size"}, {"CreatedTime", "createdTime"}, {"Description", "description"}}

func (a *app) modelCmd() *cobra.Command {
	var (
		name, path, description, framework, frameworkVersion string
		tags, properties                                     []string
	)
	register := &cobra.Command{
		Use:     "register",
		Short:   "Register a file or directory as the next version of a model",
		Example: example("aksml model register -n mymodel -p model.pkl --tag team=fraud --description 'first try'"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := a.workspace(cmd.Context())
			if err != nil {
				return err
			}
			t, err := parseTags(tags)
			p, perr := parseTags(properties)
			var fw aml.Framework
			if framework != "" {
				var ferr error
				fw, ferr = aml.ParseFramework(framework)
				err = errors.Join(err, ferr)
			}
			if err := errors.Join(err, perr); err != nil {
				return err
			}
			m, err := ws.RegisterModel(cmd.Context(), name, path, &aml.RegisterModelOptions{
				Tags: t, Properties: p, Description: description, Framework: fw, FrameworkVersion: frameworkVersion})
			if err != nil {
				return err
			}
			return a.print(view{value: modelView{m, m.ID()}, columns: modelColumns})
		},
	}
	register.Flags().StringVarP(&name, "name", "n", "", "model name")
	register.Flags().StringVarP(&path, "model-path", "p", "", "file or directory to register")
	register.Flags().StringVarP(&description, "description", "d", "", "description")
	register.Flags().StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	register.Flags().StringArrayVar(&properties, "property", nil, "property KEY=VALUE (repeatable; never changes)")
	register.Flags().StringVar(&framework, "model-framework", "", "framework: Custom, ScikitLearn, TensorFlow, Onnx, PyTorch, TfKeras, Multi")
	register.Flags().StringVar(&frameworkVersion, "model-framework-version", "", "framework version")
	required(register, "name", "model-path")

	var listName, listTag, listProperty string
	var latest bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List registered model versions",
		Example: example("aksml model list -o table", "aksml model list -n mymodel --latest", "aksml model list --query \"[?tags.team=='fraud'].id\""),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := a.workspace(cmd.Context())
			if err != nil {
				return err
			}
			opts := &aml.ListModelsOptions{Name: listName, Latest: latest}
			if listTag != "" {
				opts.Tags = []string{listTag}
			}
			if listProperty != "" {
				opts.Properties = []string{listProperty}
			}
			ms, err := ws.ListModels(cmd.Context(), opts)
			if err != nil {
				return err
			}
			out := make([]modelView, 0, len(ms))
			for _, m := range ms {
				out = append(out, modelView{m, m.ID()})
			}
			return a.print(view{value: out, columns: modelColumns})
		},
	}
	list.Flags().StringVarP(&listName, "name", "n", "", "only versions of this model")
	list.Flags().StringVar(&listTag, "tag", "", "only models with this tag: KEY or KEY=VALUE")
	list.Flags().StringVar(&listProperty, "property", "", "only models with this property: KEY or KEY=VALUE")
	list.Flags().BoolVarP(&latest, "latest", "l", false, "only the latest version of each model")

	var id string
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a model version (NAME:VERSION, or NAME for the latest)",
		Example: example("aksml model show -i mymodel:1", "aksml model show -n mymodel"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.model(cmd.Context(), id, name)
			if err != nil {
				return err
			}
			return a.print(view{value: modelView{m, m.ID()}, columns: modelColumns})
		},
	}
	show.Flags().StringVarP(&id, "model-id", "i", "", "model id NAME:VERSION")
	show.Flags().StringVarP(&name, "name", "n", "", "model name (the latest version)")

	var target string
	var overwrite bool
	download := &cobra.Command{
		Use:     "download",
		Short:   "Download a model version's files into a directory",
		Example: example("aksml model download -i mymodel:1 -t ./out"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.model(cmd.Context(), id, name)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(target, 0o755); err != nil {
				return errcode.Wrap(errcode.InvalidArgument, err)
			}
			p, err := a.ws.DownloadModel(cmd.Context(), m.ID(), target, &aml.DownloadOptions{Overwrite: overwrite})
			if err != nil {
				return err
			}
			return a.print(view{value: map[string]string{"id": m.ID(), "path": p}})
		},
	}
	download.Flags().StringVarP(&id, "model-id", "i", "", "model id NAME:VERSION")
	download.Flags().StringVarP(&name, "name", "n", "", "model name (the latest version)")
	download.Flags().StringVarP(&target, "target-dir", "t", ".", "directory to download into")
	download.Flags().BoolVar(&overwrite, "overwrite", false, "replace files already there")

	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a model version (refused while a service uses it)",
		Example: example("aksml model delete -i mymodel:1"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.model(cmd.Context(), id, name)
			if err != nil {
				return err
			}
			return a.ws.DeleteModel(cmd.Context(), m.ID())
		},
	}
	del.Flags().StringVarP(&id, "model-id", "i", "", "model id NAME:VERSION")
	del.Flags().StringVarP(&name, "name", "n", "", "model name (the latest version)")

	return group("model", "Register, list, show, download, delete and deploy models", register, list, show, download, del, a.deployCmd())
}

// model finds a model by id (NAME:VERSION, or NAME for the latest) or name.
func (a *app) model(ctx context.Context, id, name string) (*aml.Model, error) {
	ws, err := a.workspace(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case id != "" && name != "":
		return nil, usageError("give the model as -i NAME:VERSION or -n NAME, not both")
	case id == "" && name == "":
		return nil, usageError("give the model as -i NAME:VERSION or -n NAME")
	case name != "":
		return ws.Model(ctx, name)
	}
	return modelByID(ctx, ws, id)
}

// modelByID reads NAME:VERSION, or NAME for the latest version.
func modelByID(ctx context.Context, ws *aml.Workspace, id string) (*aml.Model, error) {
	n, v, err := aml.ParseModelID(id)
	if err != nil {
		if !containsColon(id) {
			return ws.Model(ctx, id)
		}
		return nil, err
	}
	return ws.ModelVersion(ctx, n, v)
}

func containsColon(s string) bool {
	for i := range len(s) {
		if s[i] == ':' {
			return true
		}
	}
	return false
}
