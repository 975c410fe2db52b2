package gointerp

import (
	"errors"
	"fmt"
	"go/parser"
	"go/scanner"
	"go/token"
	"reflect"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/aksml/aksml/internal/gointerp/symbols"
)

// Completion is the answer to a completion request: the names that may
// replace src[Start:End].
type Completion struct {
	Matches    []string
	Start, End int
}

var keywords = []string{"break", "case", "chan", "const", "continue", "default", "defer", "else",
	"fallthrough", "for", "func", "go", "goto", "if", "import", "interface", "map", "package", "range",
	"return", "select", "struct", "switch", "type", "var"}

var builtins = []string{"append", "cap", "clear", "close", "complex", "copy", "delete", "imag", "len",
	"make", "max", "min", "new", "panic", "print", "println", "real", "recover",
	"bool", "byte", "complex128", "complex64", "error", "float32", "float64", "int", "int16", "int32",
	"int64", "int8", "rune", "string", "uint", "uint16", "uint32", "uint64", "uint8", "uintptr", "any",
	"true", "false", "nil", "iota"}

func isIdentRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// wordAt returns the start of the identifier ending at off and, when it is
// preceded by "x.", the start of x.
func wordAt(src string, off int) (qual string, start int) {
	start = off
	for start > 0 {
		r, n := utf8.DecodeLastRuneInString(src[:start])
		if !isIdentRune(r) {
			break
		}
		start -= n
	}
	if start > 0 && src[start-1] == '.' {
		q := start - 1
		for q > 0 {
			r, n := utf8.DecodeLastRuneInString(src[:q])
			if !isIdentRune(r) {
				break
			}
			q -= n
		}
		qual = src[q : start-1]
	}
	return qual, start
}

// packagePath resolves a package's local name: the cells' imports first,
// then the packages of the symbol tables by their last path element.
func (it *Interpreter) packagePath(name string) (string, bool) {
	if p, ok := it.imports[name]; ok {
		return p, true
	}
	for key := range symbols.Symbols {
		path, pkg := splitKey(key)
		if pkg == name {
			return path, true
		}
	}
	return "", false
}

// splitKey splits a symbol-table key "path/name".
func splitKey(key string) (path, name string) {
	i := strings.LastIndex(key, "/")
	return key[:i], key[i+1:]
}

func exports(path string) map[string]reflect.Value {
	for key, syms := range symbols.Symbols {
		if p, _ := splitKey(key); p == path {
			return syms
		}
	}
	return nil
}

// Complete returns the names that complete the identifier before byte
// offset cursor of src: a package's exported names after "pkg.", a
// variable's fields and methods after "v.", otherwise the cell globals,
// imported packages, keywords and builtins.
func (it *Interpreter) Complete(src string, cursor int) Completion {
	cursor = min(max(cursor, 0), len(src))
	qual, start := wordAt(src, cursor)
	prefix := src[start:cursor]
	c := Completion{Start: start, End: cursor}
	var cands []string
	if qual != "" {
		cands = it.members(qual)
	} else {
		for name := range it.globals() {
			cands = append(cands, name)
		}
		for name := range it.imports {
			cands = append(cands, name)
		}
		cands = append(cands, keywords...)
		cands = append(cands, builtins...)
	}
	for _, n := range cands {
		if strings.HasPrefix(n, prefix) && !strings.HasPrefix(n, "_aksml") {
			c.Matches = append(c.Matches, n)
		}
	}
	sort.Strings(c.Matches)
	c.Matches = slices.Compact(c.Matches)
	return c
}

// members lists what may follow "qual.".
func (it *Interpreter) members(qual string) []string {
	if v, ok := it.globals()[qual]; ok && v.IsValid() {
		return valueMembers(v)
	}
	path, ok := it.packagePath(qual)
	if !ok {
		return nil
	}
	var out []string
	for name := range exports(path) {
		if token.IsExported(name) {
			out = append(out, name)
		}
	}
	return out
}

func valueMembers(v reflect.Value) []string {
	var out []string
	t := v.Type()
	for i := range t.NumMethod() {
		out = append(out, t.Method(i).Name)
	}
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		t = t.Elem()
	} else if t.Kind() == reflect.Pointer {
		return out
	}
	if t.Kind() == reflect.Struct {
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				out = append(out, f.Name)
			}
		}
	}
	if pt := reflect.PointerTo(t); pt != v.Type() {
		for i := range pt.NumMethod() {
			out = append(out, pt.Method(i).Name)
		}
	}
	return out
}

// Inspect describes the identifier at byte offset cursor of src: a
// package symbol's type (a function's signature, a type's kind and
// methods, a constant's value) or a global's type and value.
func (it *Interpreter) Inspect(src string, cursor int) (string, bool) {
	cursor = min(max(cursor, 0), len(src))
	end := cursor
	for end < len(src) {
		r, n := utf8.DecodeRuneInString(src[end:])
		if !isIdentRune(r) {
			break
		}
		end += n
	}
	qual, start := wordAt(src, end)
	name := src[start:end]
	if name == "" {
		return "", false
	}
	if qual == "" {
		if v, ok := it.globals()[name]; ok && v.IsValid() {
			return fmt.Sprintf("%s: %s = %s", name, v.Type(), short(fmt.Sprintf("%+v", safeInterface(v)))), true
		}
		if p, ok := it.packagePath(name); ok {
			return fmt.Sprintf("package %s (%q)", name, p), true
		}
		return "", false
	}
	if v, ok := it.globals()[qual]; ok && v.IsValid() {
		if m, ok := v.Type().MethodByName(name); ok {
			return fmt.Sprintf("func (%s) %s%s", v.Type(), name, strings.TrimPrefix(m.Type.String(), "func")), true
		}
		return "", false
	}
	path, ok := it.packagePath(qual)
	if !ok {
		return "", false
	}
	v, ok := exports(path)[name]
	if !ok {
		return "", false
	}
	return describe(qual, name, v), true
}

func safeInterface(v reflect.Value) any {
	if v.CanInterface() {
		return v.Interface()
	}
	return v.String()
}

func short(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

// describe renders one exported symbol as yaegi's tables hold it: types as
// a typed nil pointer, variables as a pointer, functions and constants as
// themselves.
func describe(pkg, name string, v reflect.Value) string {
	q := pkg + "." + name
	t := v.Type()
	switch {
	case t.String() == "constant.Value":
		return fmt.Sprintf("const %s = %v", q, v.Interface())
	case t.Kind() == reflect.Func:
		return "func " + q + strings.TrimPrefix(t.String(), "func")
	case t.Kind() == reflect.Pointer && v.IsNil():
		et := t.Elem()
		var b strings.Builder
		fmt.Fprintf(&b, "type %s %s", q, et.Kind())
		if et.Kind() == reflect.Struct {
			for i := range et.NumField() {
				if f := et.Field(i); f.IsExported() {
					fmt.Fprintf(&b, "\n    %s %s", f.Name, f.Type)
				}
			}
		}
		pt := reflect.PointerTo(et)
		for i := range pt.NumMethod() {
			m := pt.Method(i)
			fmt.Fprintf(&b, "\nfunc (%s) %s%s", pt, m.Name, strings.TrimPrefix(m.Type.String(), "func("+pt.String()))
		}
		return b.String()
	case t.Kind() == reflect.Pointer:
		return fmt.Sprintf("var %s %s", q, t.Elem())
	}
	return fmt.Sprintf("%s %s", q, t)
}

// IsComplete tells a front-end whether src is ready to run: "complete",
// "incomplete" (an open bracket or string, with the indent of the next
// line) or "invalid".
func IsComplete(src string) (status, indent string) {
	if strings.TrimSpace(src) == "" {
		return "complete", ""
	}
	open := 0
	var s scanner.Scanner
	fset := token.NewFileSet()
	var scanErr error
	s.Init(fset.AddFile("", -1, len(src)), []byte(src), func(_ token.Position, msg string) {
		scanErr = errors.New(msg)
	}, 0)
	for {
		_, tok, _ := s.Scan()
		if tok == token.EOF {
			break
		}
		switch tok {
		case token.LPAREN, token.LBRACE, token.LBRACK:
			open++
		case token.RPAREN, token.RBRACE, token.RBRACK:
			open--
		}
	}
	if scanErr != nil {
		if strings.Contains(scanErr.Error(), "not terminated") {
			return "incomplete", ""
		}
		return "invalid", ""
	}
	if open > 0 {
		return "incomplete", strings.Repeat("\t", open)
	}
	if open < 0 {
		return "invalid", ""
	}
	for _, g := range split(src) {
		text := blank(src, []segment{g})
		var err error
		if g.kind == segDecl {
			_, err = parser.ParseFile(token.NewFileSet(), "", "package main\n"+text, 0)
		} else {
			_, err = parser.ParseFile(token.NewFileSet(), "", "package main; func main() {\n"+text+"\n}", 0)
		}
		if err != nil {
			return "invalid", ""
		}
	}
	return "complete", ""
}
