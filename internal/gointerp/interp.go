package gointerp

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/scanner"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/traefik/yaegi/interp"

	"github.com/aksml/aksml/internal/gointerp/symbols"
)

// Options configure an Interpreter; nil means defaults.
type Options struct {
	// Stdout and Stderr receive what cells print (fmt.Print*, os.Stdout,
	// log); nil discards. They may be changed later with SetOutput.
	Stdout, Stderr io.Writer
	// StopWait bounds how long Eval waits, after its context ends, for the
	// cell to stop: 5 s by default.
	StopWait time.Duration
}

// Interpreter evaluates Go cells one after another, keeping every variable,
// type, function and import between them. It is not safe for concurrent
// Evals; Complete and Inspect may run while no Eval does.
type Interpreter struct {
	in       *interp.Interpreter
	stdout   *switchWriter
	stderr   *switchWriter
	stopWait time.Duration
	cells    int
	mu       sync.Mutex    // held by Eval
	runID    *uint64       // yaegi's run id, advanced to stop a cell
	busy     chan struct{} // closed when an interrupted cell that did not stop returns
	// imports holds the local names of the packages cells imported.
	imports map[string]string // local name → import path
}

// New returns an interpreter with the standard-library packages and aksml's
// packages of package symbols available to import.
func New(opts *Options) (*Interpreter, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.StopWait <= 0 {
		o.StopWait = 5 * time.Second
	}
	it := &Interpreter{stdout: &switchWriter{w: o.Stdout}, stderr: &switchWriter{w: o.Stderr},
		stopWait: o.StopWait, imports: map[string]string{}}
	it.in = interp.New(interp.Options{Stdout: it.stdout, Stderr: it.stderr, Stdin: strings.NewReader("")})
	id, err := runIDField(it.in)
	if err != nil {
		return nil, err
	}
	it.runID = id
	if err := it.in.Use(symbols.Symbols); err != nil {
		return nil, err
	}
	// os.Stdout and os.Stderr are the cell's streams (io.Writer values, as
	// yaegi's YAEGI_SPECIAL_STDIO makes them), so Progress: os.Stdout
	// reaches the notebook.
	var stdout, stderr io.Writer = it.stdout, it.stderr
	if err := it.in.Use(interp.Exports{"os/os": {
		"Stdout": reflect.ValueOf(&stdout).Elem(),
		"Stderr": reflect.ValueOf(&stderr).Elem(),
	}}); err != nil {
		return nil, err
	}
	if _, err := it.in.Eval(helpersSrc); err != nil {
		return nil, fmt.Errorf("defining the interpreter's helpers: %w", err)
	}
	return it, nil
}

// SetOutput redirects what later cells print.
func (it *Interpreter) SetOutput(stdout, stderr io.Writer) {
	it.stdout.set(stdout)
	it.stderr.set(stderr)
}

// switchWriter is a writer whose destination can change; nil discards.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) set(w io.Writer) { s.mu.Lock(); s.w = w; s.mu.Unlock() }

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	w := s.w
	s.mu.Unlock()
	if w == nil {
		return len(p), nil
	}
	return w.Write(p)
}

// Result is what a cell evaluated to.
type Result struct {
	// Value is the value of the cell's last statement when it is an
	// expression with a value; invalid otherwise.
	Value reflect.Value
}

// Error is a cell's failure.
type Error struct {
	// Name is the kind: "CompileError", "panic", "interrupted",
	// "InterpreterError" (the interpreter itself failed on the cell).
	Name string
	// Message is the one-line message, positions included
	// ("cell[3]:2:5: undefined: x").
	Message string
	// Trace holds further lines: the panic's position, hints.
	Trace []string
}

func (e *Error) Error() string { return e.Message }

// ErrBusy is returned by Eval when an interrupted cell has not stopped yet.
var ErrBusy = errors.New("an interrupted cell is still running in the background (it is blocked in compiled code); the interpreter cannot run another cell until it returns")

// Eval runs one cell. Declarations (imports, types, funcs) and statements
// may be mixed: they are compiled in source order, declarations at the
// package level and statements in the global scope, so variables persist.
// When ctx ends the cell is stopped at its next interpreted step; a cell
// blocked in compiled code keeps running until that call returns.
// name names the cell in positions ("cell[3]").
func (it *Interpreter) Eval(ctx context.Context, name, src string) (Result, error) {
	it.mu.Lock()
	defer it.mu.Unlock()
	it.cells++
	if name == "" {
		name = fmt.Sprintf("cell[%d]", it.cells)
	}
	if it.busy != nil {
		select {
		case <-it.busy:
			it.busy = nil
		default:
			return Result{}, &Error{Name: "InterpreterError", Message: ErrBusy.Error()}
		}
	}
	segs := split(src)
	var groups [][]segment
	for _, s := range segs {
		if n := len(groups); n > 0 && groups[n-1][0].kind == s.kind {
			groups[n-1] = append(groups[n-1], s)
			continue
		}
		groups = append(groups, []segment{s})
	}
	var res Result
	for gi, g := range groups {
		node, err := it.parse(name, src, g)
		if err != nil {
			return Result{}, err
		}
		v, err := it.run(ctx, name, node)
		if err != nil {
			return Result{}, err
		}
		if gi == len(groups)-1 && lastIsExpr(node) && !it.noValue(node, v) {
			res.Value = v
		}
	}
	return res, nil
}

// blank returns src with everything outside segs replaced by spaces, line
// breaks kept, so positions in the result are positions in the cell.
func blank(src string, segs []segment) string {
	b := []byte(src)
	keep := make([]bool, len(b))
	for _, s := range segs {
		for i := s.start; i < s.end; i++ {
			keep[i] = true
		}
	}
	for i := range b {
		if !keep[i] && b[i] != '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}

// parse parses one group of segments into the node the interpreter
// compiles: a file for declarations, the body of a wrapper function for
// statements. A line directive keeps the cell's own lines and columns.
func (it *Interpreter) parse(name, src string, g []segment) (ast.Node, error) {
	body := blank(src, g)
	directive := "//line " + srcName + ":1:1\n"
	var text string
	if g[0].kind == segDecl {
		text = "package main\n" + directive + body + "\n"
	} else {
		text = "package main; func main() {\n" + directive + body + "\n}\n"
	}
	f, err := parser.ParseFile(it.in.FileSet(), srcName, text, parser.DeclarationErrors)
	if err != nil {
		return nil, compileError(name, err)
	}
	r := &rewriter{ints: map[string]bool{}, globals: it.globals()}
	if g[0].kind == segDecl {
		for _, imp := range f.Imports {
			it.noteImport(imp)
		}
		r.rewrite(f)
		return f, nil
	}
	fn := f.Decls[0].(*ast.FuncDecl)
	r.rewrite(fn.Body)
	for i, st := range fn.Body.List {
		fn.Body.List[i] = wrapLoop(st)
	}
	return fn.Body, nil
}

// wrapLoop runs a loop of the cell's top level inside a function literal
// called at once: yaegi v0.16 fails to compile "if _, err := f(); …" in a
// loop of its global scope (a nil dereference in its compiler) but not in
// a function. A loop's own variables are scoped to it, so nothing else
// changes: assignments to the cell's variables still reach them.
func wrapLoop(st ast.Stmt) ast.Stmt {
	inner := st
	if l, ok := inner.(*ast.LabeledStmt); ok {
		inner = l.Stmt
	}
	if b, ok := inner.(*ast.BlockStmt); ok && len(b.List) == 2 { // a rewritten range N
		inner = b.List[1]
		if l, ok := inner.(*ast.LabeledStmt); ok {
			inner = l.Stmt
		}
	}
	switch inner.(type) {
	case *ast.ForStmt, *ast.RangeStmt:
	default:
		return st
	}
	pos := st.Pos()
	return &ast.ExprStmt{X: &ast.CallExpr{
		Fun: &ast.FuncLit{
			Type: &ast.FuncType{Func: pos, Params: &ast.FieldList{}},
			Body: &ast.BlockStmt{Lbrace: pos, List: []ast.Stmt{st}, Rbrace: st.End()},
		},
		Lparen: st.End(), Rparen: st.End(),
	}}
}

func (it *Interpreter) noteImport(imp *ast.ImportSpec) {
	path := strings.Trim(imp.Path.Value, `"`)
	local := path[strings.LastIndex(path, "/")+1:]
	if imp.Name != nil {
		local = imp.Name.Name
	}
	it.imports[local] = path
}

func lastIsExpr(n ast.Node) bool {
	b, ok := n.(*ast.BlockStmt)
	if !ok || len(b.List) == 0 {
		return false
	}
	_, ok = b.List[len(b.List)-1].(*ast.ExprStmt)
	return ok
}

// noValue tells the cells whose last expression has no value to show: a
// call without results (the interpreter then yields a *interface{} or the
// function), and the fmt.Print family, whose byte count nobody wants.
func (it *Interpreter) noValue(n ast.Node, v reflect.Value) bool {
	b := n.(*ast.BlockStmt)
	call, ok := b.List[len(b.List)-1].(*ast.ExprStmt).X.(*ast.CallExpr)
	if !ok {
		return false
	}
	if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
		if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "fmt" &&
			(strings.HasPrefix(sel.Sel.Name, "Print") || strings.HasPrefix(sel.Sel.Name, "Fprint")) {
			return true
		}
	}
	if n, known := it.results(call); known {
		return n == 0
	}
	if !v.IsValid() || v.Kind() == reflect.Func || v.Type() == reflect.TypeFor[*any]() {
		return true
	}
	return false
}

// srcName is the file name every cell is compiled under: the interpreter
// scopes imports by file name, so one name lets an import serve later
// cells. Messages name the cell instead (cellPos).
const srcName = "cell.go"

// cellPos replaces the compile-time file name in msg by the cell's name.
func cellPos(name, msg string) string {
	return strings.ReplaceAll(msg, srcName+":", name+":")
}

// results returns how many results call's function has when it is a
// compiled package function or a method of a global variable (the cases
// reflection answers); known is false otherwise.
func (it *Interpreter) results(call *ast.CallExpr) (n int, known bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return 0, false
	}
	x, ok := sel.X.(*ast.Ident)
	if !ok {
		return 0, false
	}
	if g, ok := it.globals()[x.Name]; ok {
		if !g.IsValid() {
			return 0, false
		}
		if m, ok := g.Type().MethodByName(sel.Sel.Name); ok {
			return m.Type.NumOut(), true
		}
		return 0, false
	}
	if path, ok := it.packagePath(x.Name); ok {
		if f, ok := exports(path)[sel.Sel.Name]; ok && f.Kind() == reflect.Func {
			return f.Type().NumOut(), true
		}
	}
	return 0, false
}

func compileError(name string, err error) *Error {
	var list scanner.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		e := &Error{Name: "CompileError", Message: cellPos(name, list[0].Error())}
		for _, x := range list[1:] {
			e.Trace = append(e.Trace, cellPos(name, x.Error()))
		}
		return e
	}
	return &Error{Name: "CompileError", Message: cellPos(name, err.Error())}
}

// globals returns the interpreter's globals; after a failed compilation the
// interpreter's own Globals may index past its frame, so a panic yields
// none.
func (it *Interpreter) globals() (g map[string]reflect.Value) {
	defer func() {
		if recover() != nil {
			g = map[string]reflect.Value{}
		}
	}()
	return it.in.Globals()
}

// run compiles and executes one node, turning every failure of the cell or
// of the interpreter into an *Error.
func (it *Interpreter) run(ctx context.Context, name string, node ast.Node) (v reflect.Value, err error) {
	var prog *interp.Program
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = &Error{Name: "InterpreterError", Message: fmt.Sprintf("the interpreter failed to compile this cell: %v", r),
					Trace: []string{"the kernel keeps its state; rewrite the construct (see docs/notebooks.md)"}}
			}
		}()
		prog, err = it.in.CompileAST(node)
		if err != nil {
			err = compileError(name, err)
		}
	}()
	if err != nil {
		return reflect.Value{}, err
	}
	if prog == nil {
		return reflect.Value{}, nil
	}
	// The panic position yaegi writes to stderr is kept for the error.
	pos := &panicPos{}
	it.stderr.mu.Lock()
	pos.w = it.stderr.w
	it.stderr.w = pos
	it.stderr.mu.Unlock()
	defer it.stderr.set(pos.w)

	done := make(chan struct{})
	go func() {
		defer close(done)
		v, err = it.in.Execute(prog)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		it.stop()
		select {
		case <-done:
		case <-time.After(it.stopWait):
			it.busy = done
		}
		e := &Error{Name: "interrupted", Message: "cell interrupted: " + context.Cause(ctx).Error()}
		if it.busy != nil {
			e.Trace = append(e.Trace, ErrBusy.Error())
		}
		return reflect.Value{}, e
	}
	if err == nil {
		return v, nil
	}
	var p interp.Panic
	if errors.As(err, &p) {
		e := &Error{Name: "panic", Message: fmt.Sprintf("panic: %v", p.Value)}
		if perr, ok := p.Value.(error); ok {
			e.Message = "panic: " + perr.Error()
		}
		if s := pos.last(); s != "" {
			e.Message = cellPos(name, s) + ": " + e.Message
		}
		for _, l := range pos.trace() {
			e.Trace = append(e.Trace, cellPos(name, l))
		}
		return reflect.Value{}, e
	}
	return reflect.Value{}, compileError(name, err)
}

// panicPos passes writes on, except the "file:line:col: panic" lines the
// interpreter prints when a cell panics, which it keeps.
type panicPos struct {
	w      io.Writer
	mu     sync.Mutex
	pos    []string
	frames []string
}

func (p *panicPos) Write(b []byte) (int, error) {
	s := strings.TrimSpace(string(b))
	if m := panicLine.FindStringSubmatch(s); m != nil {
		p.mu.Lock()
		p.pos = append(p.pos, m[1])
		p.frames = append(p.frames, "at "+m[2]+" ("+m[1]+")")
		p.mu.Unlock()
		return len(b), nil
	}
	if p.w == nil {
		return len(b), nil
	}
	return p.w.Write(b)
}

// panicLine is what the interpreter prints for each frame a panic unwinds:
// "cell[3]:2:5: panic: main.f(...)".
var panicLine = regexp.MustCompile(`^(\S+:\d+:\d+): panic(?:: (\S+)\(\.\.\.\))?$`)

// last is the innermost position the interpreter reported, the first one
// printed.
func (p *panicPos) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pos) == 0 {
		return ""
	}
	return p.pos[0]
}

func (p *panicPos) trace() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.frames)
}

// stop makes the running cell stop at its next interpreted step, as yaegi's
// ExecuteWithContext does on cancellation (which also races on its results,
// so the kernel runs Execute itself): it advances the interpreter's run id,
// which every frame checks before each step.
func (it *Interpreter) stop() {
	atomic.AddUint64(it.runID, 1)
}

// runIDField finds the interpreter's run id (a uint64 field "id" in yaegi
// v0.16), failing loudly if a yaegi version moved it.
func runIDField(in *interp.Interpreter) (*uint64, error) {
	f := reflect.ValueOf(in).Elem().FieldByName("id")
	if !f.IsValid() || f.Kind() != reflect.Uint64 {
		return nil, errors.New("yaegi's Interpreter has no uint64 field id: interrupting cells needs updating for this yaegi version")
	}
	return (*uint64)(unsafe.Pointer(f.UnsafeAddr())), nil
}
