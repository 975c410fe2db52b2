package aml

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/aksml/aksml/errcode"
	"go.yaml.in/yaml/v3"
)

// CondaDependencies is the conda part of an environment: what a conda
// environment file (environment.yml) says. It mirrors
// azureml.core.conda_dependencies.CondaDependencies.
type CondaDependencies struct {
	// Name is the conda environment's name; optional.
	Name string
	// Channels are conda channels, in order ("conda-forge").
	Channels []string
	// Dependencies are conda package specs ("python=3.8", "numpy>=1.20").
	Dependencies []string
	// PipPackages are the specs of the "pip:" sub-list
	// ("azureml-defaults", "scikit-learn==1.0.2").
	PipPackages []string
}

// maxCondaFile bounds the size of a conda file LoadCondaDependencies reads.
const maxCondaFile = 16 << 20

// LoadCondaDependencies reads and parses a conda environment YAML file. It
// refuses anything but a regular file of at most 16 MiB.
func LoadCondaDependencies(path string) (*CondaDependencies, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "conda file %s: %v", path, err)
	}
	if !info.Mode().IsRegular() || info.Size() > maxCondaFile {
		return nil, errcode.Errorf(errcode.InvalidArgument, "conda file %s is not a regular file of at most %d bytes", path, maxCondaFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "conda file %s: %v", path, err)
	}
	c, err := ParseCondaDependencies(data)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "%s: %w", path, err)
	}
	return c, nil
}

// ParseCondaDependencies parses a conda environment YAML document:
//
//	name: project_environment
//	channels:
//	  - conda-forge
//	dependencies:
//	  - python=3.8
//	  - pip:
//	      - azureml-defaults
//
// The known top-level keys are name, channels, dependencies and prefix
// (ignored: it is a path on the machine that wrote the file). variables and
// any other key are errors, as are entries of the wrong shape; every problem
// is reported at once with its line, with InvalidArgument. Several "pip:"
// entries are merged in order.
func ParseCondaDependencies(data []byte) (c *CondaDependencies, err error) {
	defer func() {
		// The YAML library is third-party code: never let it crash the
		// caller on hostile input.
		if r := recover(); r != nil {
			c, err = nil, errcode.Errorf(errcode.InvalidArgument, "conda file: unparsable YAML: %v", r)
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "conda file: invalid YAML: %v", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, errcode.New(errcode.InvalidArgument, "conda file is empty")
	}
	p := &condaParser{}
	c = p.top(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return c, nil
}

type condaParser struct{ errs []error }

func (p *condaParser) fail(n *yaml.Node, field, format string, args ...any) {
	p.errs = append(p.errs, errcode.Errorf(errcode.InvalidArgument, "conda file: line %d: %s: %s",
		n.Line, field, fmt.Sprintf(format, args...)))
}

// resolve follows aliases (bounded, in case of a cycle).
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null"
		}
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

func isYAMLNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (p *condaParser) top(n *yaml.Node) *CondaDependencies {
	n = resolve(n)
	if n == nil || isYAMLNull(n) {
		p.errs = append(p.errs, errcode.New(errcode.InvalidArgument, "conda file is empty"))
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, "top level", "expected a mapping with name, channels and dependencies, got %s", yamlKind(n))
		return nil
	}
	c := &CondaDependencies{}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.fail(k, "top level", "expected a key, got %s", yamlKind(k))
			continue
		}
		if seen[k.Value] {
			p.fail(k, k.Value, "duplicate key")
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "name":
			c.Name = p.scalar(v, "name", true)
		case "prefix":
			p.scalar(v, "prefix", true)
		case "channels":
			c.Channels = p.scalarList(v, "channels")
		case "dependencies":
			p.dependencies(v, c)
		case "variables":
			p.fail(k, "variables", "conda environment variables are not supported; set environment_variables on the environment instead")
		default:
			p.fail(k, k.Value, "unknown field (expected name, channels, dependencies or prefix)")
		}
	}
	return c
}

// scalar returns a scalar's text; null gives "" when allowed.
func (p *condaParser) scalar(n *yaml.Node, field string, nullOK bool) string {
	if isYAMLNull(n) {
		if !nullOK {
			p.fail(n, field, "empty entry")
		}
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		p.fail(n, field, "expected a string, got %s", yamlKind(n))
		return ""
	}
	if !nullOK && n.Value == "" {
		p.fail(n, field, "empty entry")
	}
	return n.Value
}

func (p *condaParser) scalarList(n *yaml.Node, field string) []string {
	if isYAMLNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "expected a list of strings, got %s", yamlKind(n))
		return nil
	}
	var out []string
	for i, it := range n.Content {
		it = resolve(it)
		if it == nil {
			continue
		}
		s := p.scalar(it, fmt.Sprintf("%s[%d]", field, i), false)
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *condaParser) dependencies(n *yaml.Node, c *CondaDependencies) {
	if isYAMLNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "dependencies", "expected a list, got %s", yamlKind(n))
		return
	}
	for i, it := range n.Content {
		it = resolve(it)
		if it == nil {
			continue
		}
		field := fmt.Sprintf("dependencies[%d]", i)
		switch it.Kind {
		case yaml.ScalarNode:
			if s := p.scalar(it, field, false); s != "" {
				c.Dependencies = append(c.Dependencies, s)
			}
		case yaml.MappingNode:
			for j := 0; j+1 < len(it.Content); j += 2 {
				k, v := resolve(it.Content[j]), resolve(it.Content[j+1])
				if k == nil || v == nil {
					continue
				}
				if k.Kind != yaml.ScalarNode || k.Value != "pip" {
					p.fail(k, field, "unknown key %q (only pip may hold a sub-list)", k.Value)
					continue
				}
				c.PipPackages = append(c.PipPackages, p.scalarList(v, field+".pip")...)
			}
		default:
			p.fail(it, field, "expected a package spec or a pip mapping, got %s", yamlKind(it))
		}
	}
}

// YAML renders c as a conda environment file that ParseCondaDependencies
// reads back to an equal value.
func (c *CondaDependencies) YAML() []byte {
	type doc struct {
		Name         string   `yaml:"name,omitempty"`
		Channels     []string `yaml:"channels,omitempty"`
		Dependencies []any    `yaml:"dependencies,omitempty"`
	}
	d := doc{Name: c.Name, Channels: c.Channels}
	for _, s := range c.Dependencies {
		d.Dependencies = append(d.Dependencies, s)
	}
	if len(c.PipPackages) > 0 {
		d.Dependencies = append(d.Dependencies, map[string][]string{"pip": c.PipPackages})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		// Encoding strings, lists and maps of strings cannot fail.
		panic(fmt.Sprintf("aml: render conda YAML: %v", err))
	}
	enc.Close()
	return buf.Bytes()
}

// HasPackage reports whether a conda or pip spec names the package name
// ("azureml-defaults~=1.27" names azureml-defaults), compared
// case-insensitively with '_' and '-' treated alike.
func (c *CondaDependencies) HasPackage(name string) bool {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "-") }
	want := norm(name)
	for _, s := range slices.Concat(c.Dependencies, c.PipPackages) {
		if norm(packageName(s)) == want {
			return true
		}
	}
	return false
}

// packageName cuts the version, extras and markers off a package spec.
func packageName(spec string) string {
	spec = strings.TrimSpace(spec)
	if i := strings.LastIndex(spec, "::"); i >= 0 { // conda channel::package
		spec = spec[i+2:]
	}
	if i := strings.IndexAny(spec, "=<>!~[ ;@"); i >= 0 {
		spec = spec[:i]
	}
	return spec
}

func (c *CondaDependencies) validate(prefix string) []error {
	var errs []error
	check := func(field string, list []string) {
		for i, s := range list {
			if strings.TrimSpace(s) == "" {
				errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "%s%s[%d] is empty", prefix, field, i))
			}
		}
	}
	check("channels", c.Channels)
	check("dependencies", c.Dependencies)
	check("pip", c.PipPackages)
	return errs
}

func (c *CondaDependencies) clone() *CondaDependencies {
	if c == nil {
		return nil
	}
	return &CondaDependencies{Name: c.Name, Channels: slices.Clone(c.Channels),
		Dependencies: slices.Clone(c.Dependencies), PipPackages: slices.Clone(c.PipPackages)}
}

// condaJSON is the inferenceconfig.json shape: the pip sub-list is an
// object inside the dependencies array.
type condaJSON struct {
	Channels     []string `json:"channels,omitempty"`
	Dependencies []any    `json:"dependencies,omitempty"`
	Name         string   `json:"name,omitempty"`
}

func (c *CondaDependencies) toJSON() condaJSON {
	j := condaJSON{Channels: c.Channels, Name: c.Name}
	for _, s := range c.Dependencies {
		j.Dependencies = append(j.Dependencies, s)
	}
	if len(c.PipPackages) > 0 {
		j.Dependencies = append(j.Dependencies, map[string][]string{"pip": c.PipPackages})
	}
	return j
}

func decodeCondaJSON(o *jsonObj) *CondaDependencies {
	c := &CondaDependencies{}
	o.str("name", &c.Name)
	o.strList("channels", &c.Channels)
	if raw, ok := o.Take("dependencies"); ok {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			o.WrongType("dependencies", "an array", raw)
		}
		for i, it := range items {
			path := fmt.Sprintf("%s[%d]", o.Path("dependencies"), i)
			switch jsonKind(it) {
			case "a string":
				var s string
				json.Unmarshal(it, &s)
				c.Dependencies = append(c.Dependencies, s)
			case "an object":
				sub := newJSONObj(o.Decoder(), path, it)
				if sub != nil {
					var pip []string
					sub.strList("pip", &pip)
					c.PipPackages = append(c.PipPackages, pip...)
					sub.done()
				}
			default:
				o.Decoder().WrongType(path, `a package spec string or a {"pip": [...]} object`, it)
			}
		}
	}
	o.done()
	return c
}
