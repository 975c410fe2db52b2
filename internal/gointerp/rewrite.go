package gointerp

import (
	"go/ast"
	"go/token"
	"reflect"
)

// The interpreter (yaegi v0.16) does not know two Go 1.22+ forms; the cell's
// syntax tree is rewritten before it is compiled:
//
//   - for i := range N (an integer N) becomes
//     { _aksmlN := N; for i := _aksmlN - _aksmlN; i < _aksmlN; i++ { … } }
//     (i keeps N's type, N is evaluated once);
//   - new(V) of a value (Go 1.26) becomes a call of a helper returning a
//     pointer to a copy of V: yaegi reads new(true) as new of a type named
//     true and yields a pointer to false. Constants get a helper of their
//     default type (bool, int, float64, string, rune, complex128); calls,
//     conversions to a basic type and composite literals a function literal. An
//     identifier is left alone: new(x) of a variable x stays a (failing)
//     new of a type.
//
// Whether N is an integer is decided from the syntax and the interpreter's
// globals: integer literals and constants, len and cap, integer
// conversions, arithmetic on those, and variables known to hold integers.

// helpersSrc defines the new(V) helpers in the interpreter's main package.
const helpersSrc = `package main
func _aksmlNewBool(v bool) *bool { return &v }
func _aksmlNewInt(v int) *int { return &v }
func _aksmlNewFloat64(v float64) *float64 { return &v }
func _aksmlNewString(v string) *string { return &v }
func _aksmlNewRune(v rune) *rune { return &v }
func _aksmlNewComplex128(v complex128) *complex128 { return &v }
`

// rangeVar names the temporary holding N of a rewritten range loop.
const rangeVar = "_aksmlN"

type rewriter struct {
	ints    map[string]bool          // identifiers known to hold integers
	globals map[string]reflect.Value // the interpreter's globals
	changed bool
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

var intTypes = map[string]bool{"int": true, "int8": true, "int16": true, "int32": true, "int64": true,
	"uint": true, "uint8": true, "uint16": true, "uint32": true, "uint64": true, "uintptr": true,
	"byte": true, "rune": true}

// isInt reports whether e certainly has an integer type (or is an untyped
// integer constant).
func (r *rewriter) isInt(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.INT
	case *ast.ParenExpr:
		return r.isInt(e.X)
	case *ast.UnaryExpr:
		return (e.Op == token.SUB || e.Op == token.ADD || e.Op == token.XOR) && r.isInt(e.X)
	case *ast.BinaryExpr:
		switch e.Op {
		case token.SHL, token.SHR:
			return r.isInt(e.X)
		case token.ADD, token.SUB, token.MUL, token.QUO, token.REM, token.AND, token.OR, token.XOR, token.AND_NOT:
			return r.isInt(e.X) && r.isInt(e.Y) || r.isInt(e.X) && isLit(e.Y) || isLit(e.X) && r.isInt(e.Y)
		}
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && len(e.Args) == 1 {
			return id.Name == "len" || id.Name == "cap" || intTypes[id.Name]
		}
	case *ast.Ident:
		if r.ints[e.Name] {
			return true
		}
		if v, ok := r.globals[e.Name]; ok && v.IsValid() {
			return isIntKind(v.Kind())
		}
	}
	return false
}

func isLit(e ast.Expr) bool {
	b, ok := e.(*ast.BasicLit)
	return ok && b.Kind == token.INT
}

// collectInts records the identifiers the cell declares with integer values.
func (r *rewriter) collectInts(n ast.Node) {
	ast.Inspect(n, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE && len(n.Lhs) == len(n.Rhs) {
				for i, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok && r.isInt(n.Rhs[i]) {
						r.ints[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			if t, ok := n.Type.(*ast.Ident); ok && intTypes[t.Name] {
				for _, id := range n.Names {
					r.ints[id.Name] = true
				}
			} else if n.Type == nil && len(n.Names) == len(n.Values) {
				for i, id := range n.Names {
					if r.isInt(n.Values[i]) {
						r.ints[id.Name] = true
					}
				}
			}
		case *ast.RangeStmt:
			// the key of a range over an integer is an integer
			if id, ok := n.Key.(*ast.Ident); ok && r.isInt(n.X) {
				r.ints[id.Name] = true
			}
		}
		return true
	})
}

// rewrite applies both rewrites to n in place.
func (r *rewriter) rewrite(n ast.Node) {
	r.collectInts(n)
	ast.Inspect(n, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BlockStmt:
			n.List = r.stmts(n.List)
		case *ast.CaseClause:
			n.Body = r.stmts(n.Body)
		case *ast.CommClause:
			n.Body = r.stmts(n.Body)
		case *ast.CallExpr:
			r.newCall(n)
		}
		return true
	})
}

func (r *rewriter) stmts(list []ast.Stmt) []ast.Stmt {
	for i, s := range list {
		if b := r.rangeInt(s); b != nil {
			list[i] = b
		}
	}
	return list
}

// rangeInt returns the replacement of a range-over-integer statement
// (possibly labelled), or nil.
func (r *rewriter) rangeInt(s ast.Stmt) ast.Stmt {
	var label *ast.LabeledStmt
	if l, ok := s.(*ast.LabeledStmt); ok {
		label, s = l, l.Stmt
	}
	rs, ok := s.(*ast.RangeStmt)
	if !ok || rs.Value != nil || !r.isInt(rs.X) {
		return nil
	}
	pos := rs.For
	n := func() *ast.Ident { return &ast.Ident{NamePos: pos, Name: rangeVar} }
	key := rs.Key
	tok := rs.Tok
	if key == nil || isBlank(key) {
		key, tok = &ast.Ident{NamePos: pos, Name: "_aksmlI"}, token.DEFINE
	}
	loop := &ast.ForStmt{
		For:  pos,
		Init: &ast.AssignStmt{Lhs: []ast.Expr{key}, TokPos: pos, Tok: tok, Rhs: []ast.Expr{&ast.BinaryExpr{X: n(), OpPos: pos, Op: token.SUB, Y: n()}}},
		Cond: &ast.BinaryExpr{X: cloneIdent(key), OpPos: pos, Op: token.LSS, Y: n()},
		Post: &ast.IncDecStmt{X: cloneIdent(key), TokPos: pos, Tok: token.INC},
		Body: rs.Body,
	}
	var inner ast.Stmt = loop
	if label != nil {
		label.Stmt = loop
		inner = label
	}
	r.changed = true
	return &ast.BlockStmt{Lbrace: pos, List: []ast.Stmt{
		&ast.AssignStmt{Lhs: []ast.Expr{n()}, TokPos: pos, Tok: token.DEFINE, Rhs: []ast.Expr{rs.X}},
		inner,
	}, Rbrace: rs.Body.Rbrace}
}

func isBlank(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == "_"
}

func cloneIdent(e ast.Expr) ast.Expr {
	if id, ok := e.(*ast.Ident); ok {
		return &ast.Ident{NamePos: id.NamePos, Name: id.Name}
	}
	return e
}

// newCall rewrites new(V) of a constant value V to the matching helper.
func (r *rewriter) newCall(c *ast.CallExpr) {
	id, ok := c.Fun.(*ast.Ident)
	if !ok || id.Name != "new" || len(c.Args) != 1 {
		return
	}
	if h := helperFor(c.Args[0]); h != "" {
		c.Fun = &ast.Ident{NamePos: id.NamePos, Name: h}
		r.changed = true
		return
	}
	// new(T{…}) and new(T(x)) with a basic T: func() *T { v := V; return &v }()
	var typ ast.Expr
	switch a := c.Args[0].(type) {
	case *ast.CompositeLit:
		typ = a.Type
	case *ast.CallExpr:
		if t, ok := a.Fun.(*ast.Ident); ok && len(a.Args) == 1 && basicTypes[t.Name] {
			typ = t
		}
	}
	if typ == nil {
		return
	}
	pos := id.NamePos
	v := func() *ast.Ident { return &ast.Ident{NamePos: pos, Name: "_aksmlV"} }
	c.Fun = &ast.FuncLit{
		Type: &ast.FuncType{Func: pos, Params: &ast.FieldList{},
			Results: &ast.FieldList{List: []*ast.Field{{Type: &ast.StarExpr{Star: pos, X: typ}}}}},
		Body: &ast.BlockStmt{Lbrace: pos, List: []ast.Stmt{
			&ast.AssignStmt{Lhs: []ast.Expr{v()}, TokPos: pos, Tok: token.DEFINE, Rhs: []ast.Expr{c.Args[0]}},
			&ast.ReturnStmt{Return: pos, Results: []ast.Expr{&ast.UnaryExpr{OpPos: pos, Op: token.AND, X: v()}}},
		}, Rbrace: pos},
	}
	c.Args = nil
	r.changed = true
}

var basicTypes = map[string]bool{"bool": true, "string": true, "float32": true, "float64": true,
	"complex64": true, "complex128": true, "int": true, "int8": true, "int16": true, "int32": true, "int64": true,
	"uint": true, "uint8": true, "uint16": true, "uint32": true, "uint64": true, "uintptr": true,
	"byte": true, "rune": true}

// helperFor names the helper for new(e), or "" when e is (or may be) a type.
func helperFor(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return helperFor(e.X)
	case *ast.Ident:
		if e.Name == "true" || e.Name == "false" {
			return "_aksmlNewBool"
		}
	case *ast.BasicLit:
		switch e.Kind {
		case token.INT:
			return "_aksmlNewInt"
		case token.FLOAT:
			return "_aksmlNewFloat64"
		case token.STRING:
			return "_aksmlNewString"
		case token.CHAR:
			return "_aksmlNewRune"
		case token.IMAG:
			return "_aksmlNewComplex128"
		}
	case *ast.UnaryExpr:
		if e.Op == token.NOT {
			return "_aksmlNewBool"
		}
		if e.Op == token.SUB || e.Op == token.ADD {
			return helperFor(e.X)
		}
	case *ast.BinaryExpr:
		switch e.Op {
		case token.LAND, token.LOR, token.EQL, token.NEQ, token.LSS, token.LEQ, token.GTR, token.GEQ:
			return "_aksmlNewBool"
		}
		if h := helperFor(e.X); h != "" && helperFor(e.Y) == h {
			return h
		}
	}
	return ""
}
