package aksml

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMigrationGuideNamesExist checks every Go name in the second column of
// docs/migration.md's table ("pkg.Func", "pkg.Type", "pkg.Type.Method")
// against the declarations in the package's directory.
func TestMigrationGuideNamesExist(t *testing.T) {
	data, err := os.ReadFile("docs/migration.md")
	if err != nil {
		t.Fatal(err)
	}
	decls := map[string]map[string]bool{} // package dir → declared names
	declared := func(dir string) map[string]bool {
		if d, ok := decls[dir]; ok {
			return d
		}
		d := map[string]bool{}
		fset := token.NewFileSet()
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, decl := range af.Decls {
				switch decl := decl.(type) {
				case *ast.FuncDecl:
					if decl.Recv == nil {
						d[decl.Name.Name] = true
						continue
					}
					typ := decl.Recv.List[0].Type
					if s, ok := typ.(*ast.StarExpr); ok {
						typ = s.X
					}
					if id, ok := typ.(*ast.Ident); ok {
						d[id.Name+"."+decl.Name.Name] = true
					}
				case *ast.GenDecl:
					for _, spec := range decl.Specs {
						switch spec := spec.(type) {
						case *ast.TypeSpec:
							d[spec.Name.Name] = true
						case *ast.ValueSpec:
							for _, n := range spec.Names {
								d[n.Name] = true
							}
						}
					}
				}
			}
		}
		decls[dir] = d
		return d
	}
	name := regexp.MustCompile("`([a-z]+)\\.([A-Z][A-Za-z0-9]*(?:\\.[A-Z][A-Za-z0-9]*)?)`")
	rows := 0
	for _, line := range strings.Split(string(data), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") || strings.TrimSpace(cells[1]) == "Azure ML SDK v1" {
			continue
		}
		rows++
		found := name.FindAllStringSubmatch(cells[2], -1)
		if len(found) == 0 {
			t.Errorf("row %q names no Go symbol", strings.TrimSpace(line))
		}
		for _, m := range found {
			dir := m[1]
			if _, err := os.Stat(dir); err != nil {
				t.Errorf("%s.%s: no package directory %s", m[1], m[2], dir)
				continue
			}
			if !declared(dir)[m[2]] {
				t.Errorf("docs/migration.md names %s.%s, which package %s does not declare", m[1], m[2], dir)
			}
		}
	}
	if rows < 30 {
		t.Errorf("found %d rows in the migration table, want at least 30", rows)
	}
}

// TestDocsLinks checks the relative links of README.md and docs/*.md: each
// names a file of the repository, and none leaves it.
func TestDocsLinks(t *testing.T) {
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := filepath.Join(filepath.Dir(f), target)
			if rel, err := filepath.Rel(".", path); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links to %s, outside the repository", f, target)
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s: %v", f, target, err)
			}
		}
	}
}

// TestDocsTLSGuideLinked: the TLS guide is reachable from the README and
// the migration guide.
func TestDocsTLSGuideLinked(t *testing.T) {
	for f, want := range map[string]string{"README.md": "(docs/tls.md)", "docs/migration.md": "(tls.md)", "docs/cli.md": "(tls.md)"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), want) {
			t.Errorf("%s does not link the TLS guide %s", f, want)
		}
	}
}
