package aml

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aksml/aksml/errcode"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Framework is the framework a model was built with (Model.Framework in the
// Azure SDK).
type Framework string

// The frameworks Azure ML v1 knows.
const (
	FrameworkCustom      Framework = "Custom"
	FrameworkTensorFlow  Framework = "TensorFlow"
	FrameworkScikitLearn Framework = "ScikitLearn"
	FrameworkOnnx        Framework = "Onnx"
	FrameworkTfKeras     Framework = "TfKeras"
	FrameworkPyTorch     Framework = "PyTorch"
	FrameworkMulti       Framework = "Multi"
)

var frameworks = []Framework{FrameworkCustom, FrameworkTensorFlow, FrameworkScikitLearn,
	FrameworkOnnx, FrameworkTfKeras, FrameworkPyTorch, FrameworkMulti}

// ParseFramework returns the Framework named s, matched case-insensitively
// ("onnx" gives FrameworkOnnx). It fails with InvalidArgument for any other
// name.
func ParseFramework(s string) (Framework, error) {
	for _, f := range frameworks {
		if strings.EqualFold(s, string(f)) {
			return f, nil
		}
	}
	return "", errcode.Errorf(errcode.InvalidArgument,
		"model_framework %q is not one of Custom, TensorFlow, ScikitLearn, Onnx, TfKeras, PyTorch, Multi", s)
}

// SupportsNoCodeDeploy reports whether a single model of this framework may
// be deployed without an inference config: true for Onnx, ScikitLearn,
// TensorFlow and Multi.
func (f Framework) SupportsNoCodeDeploy() bool {
	switch f {
	case FrameworkOnnx, FrameworkScikitLearn, FrameworkTensorFlow, FrameworkMulti:
		return true
	}
	return false
}

// ModelNamePattern is the rule for model names: 1–255 characters, letters,
// digits, '-', '.' and '_', starting with a letter or digit.
const ModelNamePattern = `^[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}$`

var modelNameRE = regexp.MustCompile(ModelNamePattern)

// Model is one registered version of a model (azureml.core.Model). It is a
// plain value: changing it changes nothing in the workspace.
type Model struct {
	// Name identifies the model.
	Name string `json:"name"`
	// Version counts from 1 per name.
	Version int `json:"version"`
	// Digest covers the whole content: it is the sha256 of a canonical
	// listing of IsDir, and of each file's path and digest, sorted by path.
	// Two registrations of the same content under the same root name have
	// the same Digest.
	Digest digest.Digest `json:"digest"`
	// Size is the total size of the files in bytes.
	Size int64 `json:"size"`
	// Root is the base name of the registered file or directory, the name
	// get_model_path and Download give it.
	Root string `json:"root"`
	// IsDir tells whether a directory (rather than one file) was registered.
	IsDir bool `json:"isDir"`
	// Files lists the files, sorted by Path. Paths use '/' and start with
	// Root ("model.pkl", or "mydir/sub/weights.bin").
	Files []ModelFile `json:"files"`
	// Tags may be changed later with UpdateModelTags.
	Tags map[string]string `json:"tags,omitempty"`
	// Properties are set at registration and never change.
	Properties map[string]string `json:"properties,omitempty"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Framework defaults to Custom.
	Framework Framework `json:"framework"`
	// FrameworkVersion is the framework's version, such as "1.0.2".
	FrameworkVersion string `json:"frameworkVersion,omitempty"`
	// CreatedTime is when the version was registered, from the workspace clock.
	CreatedTime time.Time `json:"createdTime"`
}

// ModelFile is one file of a model.
type ModelFile struct {
	// Path is relative to the download directory, with '/' separators,
	// starting with the model's Root.
	Path string `json:"path"`
	// Size is the file's size in bytes.
	Size int64 `json:"size"`
	// Digest is the sha256 of the content, the key of its blob.
	Digest digest.Digest `json:"digest"`
}

// ID returns the model id "name:version".
func (m *Model) ID() string { return modelID(m.Name, m.Version) }

func modelID(name string, version int) string { return name + ":" + strconv.Itoa(version) }

func (m *Model) clone() *Model {
	c := *m
	c.Files = slices.Clone(m.Files)
	c.Tags = maps.Clone(m.Tags)
	c.Properties = maps.Clone(m.Properties)
	return &c
}

// ParseModelID splits a model id "name:version" into its parts. It fails
// with InvalidArgument when the name breaks ModelNamePattern or the version
// is not a positive integer.
func ParseModelID(id string) (name string, version int, err error) {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return "", 0, errcode.Errorf(errcode.InvalidArgument, "model id %q is not of the form name:version", id)
	}
	name, vs := id[:i], id[i+1:]
	var errs []error
	if !modelNameRE.MatchString(name) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument,
			"model id %q: name %q does not match %s", id, name, ModelNamePattern))
	}
	v, perr := strconv.Atoi(vs)
	if perr != nil || v < 1 || strings.HasPrefix(vs, "+") {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument,
			"model id %q: version %q is not a positive integer", id, vs))
	}
	if len(errs) > 0 {
		return "", 0, errors.Join(errs...)
	}
	return name, v, nil
}

func validateModelName(name string) error {
	if !modelNameRE.MatchString(name) {
		return errcode.Errorf(errcode.InvalidArgument,
			"model_name %q does not match %s (1-255 letters, digits, '-', '.', '_', starting with a letter or digit)",
			name, ModelNamePattern)
	}
	return nil
}

// RegisterModelOptions carries the optional arguments of Model.register.
type RegisterModelOptions struct {
	// Tags may be changed later with UpdateModelTags. Keys must not be
	// empty.
	Tags map[string]string
	// Properties never change after registration. Keys must not be empty.
	Properties map[string]string
	// Description is free text.
	Description string
	// Framework is one of the Framework constants (matched
	// case-insensitively); empty means Custom.
	Framework Framework
	// FrameworkVersion requires Framework.
	FrameworkVersion string
}

// RegisterModel registers the file or directory at path as the next
// version of the model called name (Model.register). Versions count from 1
// per name and are never reused, even after a delete. Every broken rule is
// reported at once, with InvalidArgument. Files are copied into the blob
// store (content already stored is kept once); a registration interrupted at
// any point leaves either the whole version or nothing.
func (ws *Workspace) RegisterModel(ctx context.Context, name, path string, opts *RegisterModelOptions) (*Model, error) {
	if opts == nil {
		opts = &RegisterModelOptions{}
	}
	var errs []error
	if err := validateModelName(name); err != nil {
		errs = append(errs, err)
	}
	fw := FrameworkCustom
	switch {
	case opts.Framework != "":
		f, err := ParseFramework(string(opts.Framework))
		if err != nil {
			errs = append(errs, err)
		}
		fw = f
	case opts.FrameworkVersion != "":
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument,
			"model_framework_version %q is given without model_framework", opts.FrameworkVersion))
	}
	errs = append(errs, checkKeys("tags", opts.Tags)...)
	errs = append(errs, checkKeys("properties", opts.Properties)...)
	var (
		root  string
		isDir bool
		srcs  []srcFile
	)
	if path == "" {
		errs = append(errs, errcode.New(errcode.InvalidArgument, "model_path is empty"))
	} else {
		var err error
		root, isDir, srcs, err = collectFiles(path)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	st, err := ws.newStaging()
	if err != nil {
		return nil, err
	}
	defer st.close()
	staged := make([]stagedFile, len(srcs))
	m := &Model{
		Name:             name,
		Root:             root,
		IsDir:            isDir,
		Files:            make([]ModelFile, len(srcs)),
		Tags:             maps.Clone(opts.Tags),
		Properties:       maps.Clone(opts.Properties),
		Description:      opts.Description,
		Framework:        fw,
		FrameworkVersion: opts.FrameworkVersion,
	}
	for i, s := range srcs {
		sf, err := st.stage(ctx, s.abs)
		if err != nil {
			return nil, err
		}
		staged[i] = sf
		m.Files[i] = ModelFile{Path: s.rel, Size: sf.size, Digest: sf.digest}
		m.Size += sf.size
	}
	m.Digest = modelDigest(isDir, m.Files)

	err = ws.update(ctx, func(tx *bolt.Tx) error {
		if err := ws.commitBlobs(staged); err != nil {
			return err
		}
		for _, f := range staged {
			if err := ws.recordBlob(tx, f.digest.Encoded(), f.size); err != nil {
				return err
			}
		}
		ws.touchBucket(tx, bktModels, []byte(name))
		b, err := tx.Bucket(bktModels).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		ws.touchKey(tx, bktModels, []byte(name), versionKey(seq))
		m.Version = int(seq)
		m.CreatedTime = ws.clock.Now().UTC()
		data, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := b.Put(versionKey(seq), data); err != nil {
			return err
		}
		hook("precommit")
		return nil
	})
	if err != nil {
		return nil, err
	}
	ws.log.Debug("registered model", "id", m.ID(), "digest", m.Digest, "files", len(m.Files), "bytes", m.Size)
	return m.clone(), nil
}

func checkKeys(field string, m map[string]string) []error {
	if _, ok := m[""]; ok {
		return []error{errcode.Errorf(errcode.InvalidArgument, "%s has an empty key", field)}
	}
	return nil
}

// srcFile is a file to register: its path in the model and on disk.
type srcFile struct{ rel, abs string }

// collectFiles lists the regular files at p (a file, or a directory walked
// recursively). Symbolic links to files are followed; links to directories
// and special files are refused.
func collectFiles(p string) (root string, isDir bool, files []srcFile, err error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", false, nil, errcode.Errorf(errcode.InvalidArgument, "model_path %q: %v", p, err)
	}
	root = filepath.Base(abs)
	if root == string(filepath.Separator) || root == "." {
		return "", false, nil, errcode.Errorf(errcode.InvalidArgument, "model_path %q has no base name", p)
	}
	info, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", false, nil, errcode.Errorf(errcode.InvalidArgument, "model_path %q does not exist", p)
		}
		return "", false, nil, errcode.Errorf(errcode.InvalidArgument, "model_path %q: %v", p, err)
	}
	switch {
	case info.Mode().IsRegular():
		return root, false, []srcFile{{rel: root, abs: abs}}, nil
	case !info.IsDir():
		return "", false, nil, errcode.Errorf(errcode.InvalidArgument, "model_path %q is neither a regular file nor a directory", p)
	}
	var bad []error
	werr := filepath.WalkDir(abs, func(fp string, d fs.DirEntry, err error) error {
		if err != nil {
			bad = append(bad, errcode.Errorf(errcode.InvalidArgument, "model_path: %v", err))
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(abs, fp)
		rel = path.Join(root, filepath.ToSlash(rel))
		mode := d.Type()
		if mode&fs.ModeSymlink != 0 {
			ti, err := os.Stat(fp)
			if err != nil {
				bad = append(bad, errcode.Errorf(errcode.InvalidArgument, "model_path: symbolic link %s: %v", rel, err))
				return nil
			}
			mode = ti.Mode().Type()
			if ti.IsDir() {
				bad = append(bad, errcode.Errorf(errcode.InvalidArgument,
					"model_path: %s is a symbolic link to a directory, which is not supported", rel))
				return nil
			}
		}
		if !mode.IsRegular() {
			bad = append(bad, errcode.Errorf(errcode.InvalidArgument, "model_path: %s is not a regular file", rel))
			return nil
		}
		files = append(files, srcFile{rel: rel, abs: fp})
		return nil
	})
	if werr != nil {
		bad = append(bad, errcode.Errorf(errcode.InvalidArgument, "model_path: %v", werr))
	}
	if len(bad) > 0 {
		return "", false, nil, errors.Join(bad...)
	}
	if len(files) == 0 {
		return "", false, nil, errcode.Errorf(errcode.InvalidArgument, "model_path %q is a directory with no files", p)
	}
	slices.SortFunc(files, func(a, b srcFile) int { return strings.Compare(a.rel, b.rel) })
	return root, true, files, nil
}

// modelDigest is the canonical content digest of a model: sha256 over a
// header line, then one line per file (sorted by path) holding the path, a
// NUL, the file digest and a newline. Paths cannot contain NUL, so the
// listing is unambiguous.
func modelDigest(isDir bool, files []ModelFile) digest.Digest {
	d := digest.SHA256.Digester()
	h := d.Hash()
	kind := "file"
	if isDir {
		kind = "dir"
	}
	fmt.Fprintf(h, "aksml-model-v1 %s\n", kind)
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b ModelFile) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range sorted {
		fmt.Fprintf(h, "%s\x00%s\n", f.Path, f.Digest)
	}
	return d.Digest()
}

func versionKey(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeModel(data []byte) (*Model, error) {
	var m Model
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "corrupt model record: %v", err)
	}
	return &m, nil
}

// forEachModel calls fn for every stored model version, by name then version.
func forEachModel(tx *bolt.Tx, fn func(m *Model) error) error {
	return tx.Bucket(bktModels).ForEachBucket(func(name []byte) error {
		return tx.Bucket(bktModels).Bucket(name).ForEach(func(_, v []byte) error {
			m, err := decodeModel(v)
			if err != nil {
				return err
			}
			return fn(m)
		})
	})
}

// getModel reads one version; version 0 means the latest.
func getModel(tx *bolt.Tx, name string, version int) (*Model, error) {
	b := tx.Bucket(bktModels).Bucket([]byte(name))
	var data []byte
	if b != nil {
		if version == 0 {
			_, data = b.Cursor().Last()
		} else if version > 0 {
			data = b.Get(versionKey(uint64(version)))
		}
	}
	if data == nil {
		if version == 0 {
			return nil, errcode.Errorf(errcode.NotFound, "model %q is not registered", name)
		}
		return nil, errcode.Errorf(errcode.NotFound, "model %s is not registered", modelID(name, version))
	}
	return decodeModel(data)
}

// Model returns the latest version of the model called name (Model(ws,
// name)). It fails with NotFound when no version exists.
func (ws *Workspace) Model(ctx context.Context, name string) (*Model, error) {
	return ws.ModelVersion(ctx, name, 0)
}

// ModelVersion returns one version of a model; version 0 means the latest.
// It fails with NotFound when that version does not exist.
func (ws *Workspace) ModelVersion(ctx context.Context, name string, version int) (*Model, error) {
	if err := validateModelName(name); err != nil {
		return nil, err
	}
	if version < 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "model version %d is negative", version)
	}
	var m *Model
	err := ws.view(ctx, func(tx *bolt.Tx) error {
		var err error
		m, err = getModel(tx, name, version)
		return err
	})
	return m, err
}

// ModelByID returns the model version with id "name:version".
func (ws *Workspace) ModelByID(ctx context.Context, id string) (*Model, error) {
	name, v, err := ParseModelID(id)
	if err != nil {
		return nil, err
	}
	return ws.ModelVersion(ctx, name, v)
}

// ListModelsOptions filters ListModels. Every filter given must match.
type ListModelsOptions struct {
	// Name keeps only models with exactly this name.
	Name string
	// Tags keeps models having every listed tag: "key" (any value) or
	// "key=value".
	Tags []string
	// Properties filters on properties the same way.
	Properties []string
	// Framework keeps only models of this framework.
	Framework Framework
	// Latest keeps only the latest version of each name (after the other
	// filters).
	Latest bool
}

// ListModels lists registered model versions (Model.list), sorted by name
// and then by version.
func (ws *Workspace) ListModels(ctx context.Context, opts *ListModelsOptions) ([]*Model, error) {
	if opts == nil {
		opts = &ListModelsOptions{}
	}
	var fw Framework
	if opts.Framework != "" {
		f, err := ParseFramework(string(opts.Framework))
		if err != nil {
			return nil, err
		}
		fw = f
	}
	var out []*Model
	err := ws.view(ctx, func(tx *bolt.Tx) error {
		return forEachModel(tx, func(m *Model) error {
			if (opts.Name != "" && m.Name != opts.Name) ||
				(fw != "" && m.Framework != fw) ||
				!matchKV(m.Tags, opts.Tags) || !matchKV(m.Properties, opts.Properties) {
				return nil
			}
			if opts.Latest && len(out) > 0 && out[len(out)-1].Name == m.Name {
				out[len(out)-1] = m
				return nil
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}

func matchKV(have map[string]string, filters []string) bool {
	for _, f := range filters {
		k, v, hasValue := strings.Cut(f, "=")
		got, ok := have[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

// UpdateModelTags sets the tags in set and removes the keys in remove on
// the model version id ("name:version"), and returns the updated model.
// Properties cannot be changed. A key both set and removed is an error.
func (ws *Workspace) UpdateModelTags(ctx context.Context, id string, set map[string]string, remove []string) (*Model, error) {
	name, v, err := ParseModelID(id)
	if err != nil {
		return nil, err
	}
	var errs []error
	errs = append(errs, checkKeys("tags", set)...)
	for _, k := range remove {
		if _, ok := set[k]; ok {
			errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "tag %q is both set and removed", k))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var m *Model
	err = ws.update(ctx, func(tx *bolt.Tx) error {
		var err error
		m, err = getModel(tx, name, v)
		if err != nil {
			return err
		}
		if m.Tags == nil {
			m.Tags = map[string]string{}
		}
		maps.Copy(m.Tags, set)
		for _, k := range remove {
			delete(m.Tags, k)
		}
		if len(m.Tags) == 0 {
			m.Tags = nil
		}
		data, err := json.Marshal(m)
		if err != nil {
			return err
		}
		ws.touchKey(tx, bktModels, []byte(name), versionKey(uint64(v)))
		return tx.Bucket(bktModels).Bucket([]byte(name)).Put(versionKey(uint64(v)), data)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// DeleteModel deletes the model version id ("name:version"). It fails with
// NotFound when the version does not exist and with FailedPrecondition,
// naming the users, while AddModelRefs references it (a deployed service).
// The version number is not reused. The files stay in the blob store until
// GC removes the ones no other version shares.
func (ws *Workspace) DeleteModel(ctx context.Context, id string) error {
	name, v, err := ParseModelID(id)
	if err != nil {
		return err
	}
	return ws.update(ctx, func(tx *bolt.Tx) error {
		if _, err := getModel(tx, name, v); err != nil {
			return err
		}
		users, err := refUsers(tx, id)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return errcode.Errorf(errcode.FailedPrecondition,
				"model %s cannot be deleted: it is used by %s; delete or update that first",
				id, strings.Join(users, ", "))
		}
		ws.touchKey(tx, bktModels, []byte(name), versionKey(uint64(v)))
		return tx.Bucket(bktModels).Bucket([]byte(name)).Delete(versionKey(uint64(v)))
	})
}

// DownloadOptions tunes DownloadModel.
type DownloadOptions struct {
	// Link hard-links files from the blob store instead of copying them,
	// falling back to a copy across file systems. Linked files are
	// read-only and shared with the store: never modify them, and never
	// hand them to a process that might (deployments get copies).
	Link bool
	// ReadOnly makes the copies read-only (mode 0444). Copies are made
	// with copy_file_range where the platform has it, which a file system
	// with copy-on-write (Btrfs, XFS) may serve as a reflink that shares
	// blocks until one side writes.
	ReadOnly bool
	// Overwrite replaces an existing file or directory at the target
	// instead of failing with AlreadyExists.
	Overwrite bool
}

// DownloadModel writes the files of model version id ("name:version")
// under targetDir as they were registered: a file model becomes
// targetDir/ROOT, a directory model targetDir/ROOT/... (Model.download). It
// returns the path of ROOT. Pointed at azureml-models/NAME/VERSION it builds
// the AZUREML_MODEL_DIR layout. On failure nothing is left at the target.
func (ws *Workspace) DownloadModel(ctx context.Context, id, targetDir string, opts *DownloadOptions) (string, error) {
	if opts == nil {
		opts = &DownloadOptions{}
	}
	m, err := ws.ModelByID(ctx, id)
	if err != nil {
		return "", err
	}
	return ws.downloadModel(ctx, m, targetDir, opts)
}

func (ws *Workspace) downloadModel(ctx context.Context, m *Model, targetDir string, opts *DownloadOptions) (string, error) {
	id := m.ID()
	if m.Root == "" || strings.ContainsAny(m.Root, `/\`) || m.Root == "." || m.Root == ".." {
		return "", errcode.Errorf(errcode.Internal, "model %s has a corrupt root name %q", id, m.Root)
	}
	if err := os.MkdirAll(targetDir, 0o755); err != nil {
		return "", ioErr("create download directory", err)
	}
	root := filepath.Join(targetDir, m.Root)
	if _, err := os.Lstat(root); err == nil {
		if !opts.Overwrite {
			return "", errcode.Errorf(errcode.AlreadyExists, "%s already exists (set Overwrite to replace it)", root)
		}
		if err := os.RemoveAll(root); err != nil {
			return "", ioErr("remove previous download", err)
		}
	}
	if err := ws.materialize(ctx, m, targetDir, opts); err != nil {
		os.RemoveAll(root)
		return "", err
	}
	return root, nil
}

// MaterializeModels lays out the model versions ids ("name:version") under
// root the way a scoring container sees them, and returns the value of
// AZUREML_MODEL_DIR: each model goes to root/azureml-models/NAME/VERSION/ROOT;
// with one model the result is root/azureml-models/NAME/VERSION, with
// several it is root/azureml-models. Repeated ids are laid out once. With
// opts.Link the files are hard-linked from the blob store, which takes
// microseconds per file. On failure the files this call wrote are
// removed again.
func (ws *Workspace) MaterializeModels(ctx context.Context, ids []string, root string, opts *DownloadOptions) (string, error) {
	if len(ids) == 0 {
		return "", errcode.New(errcode.InvalidArgument, "no models to lay out")
	}
	var models []*Model
	seen := map[string]bool{}
	err := ws.View(ctx, func(tx *Tx) error {
		var errs []error
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			name, v, err := ParseModelID(id)
			if err == nil {
				var m *Model
				if m, err = tx.Model(name, v); err == nil {
					models = append(models, m)
				}
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return "", err
	}
	if opts == nil {
		opts = &DownloadOptions{}
	}
	base := filepath.Join(root, "azureml-models")
	var done []string
	for _, m := range models {
		dir := filepath.Join(base, m.Name, strconv.Itoa(m.Version))
		p, err := ws.downloadModel(ctx, m, dir, opts)
		if err != nil {
			for _, d := range done {
				os.RemoveAll(d)
			}
			return "", err
		}
		done = append(done, p)
	}
	if len(models) == 1 {
		return filepath.Join(base, models[0].Name, strconv.Itoa(models[0].Version)), nil
	}
	return base, nil
}

func (ws *Workspace) materialize(ctx context.Context, m *Model, targetDir string, opts *DownloadOptions) error {
	made := map[string]bool{}
	for _, f := range m.Files {
		if err := ctx.Err(); err != nil {
			return ctxErr(err)
		}
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			return errcode.Errorf(errcode.Internal, "model %s has a corrupt file path %q", m.ID(), f.Path)
		}
		dst := filepath.Join(targetDir, filepath.FromSlash(f.Path))
		if d := filepath.Dir(dst); !made[d] {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return ioErr("create download directory", err)
			}
			made[d] = true
		}
		src := ws.blobPath(f.Digest)
		if opts.Link {
			if err := os.Link(src, dst); err == nil {
				continue
			}
		}
		mode := os.FileMode(0o644)
		if opts.ReadOnly {
			mode = 0o444
		}
		if err := copyFile(src, dst, mode); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errcode.Errorf(errcode.Internal, "model %s file %s: blob %s is missing from the store", m.ID(), f.Path, f.Digest)
			}
			return ioErr("download model file", err)
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
