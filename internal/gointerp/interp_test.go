package gointerp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func newTest(t *testing.T) (*Interpreter, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	it, err := New(&Options{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	return it, &out
}

// eval runs src and returns the shown value as text ("" for none).
func eval(t *testing.T, it *Interpreter, src string) string {
	t.Helper()
	r, err := it.Eval(context.Background(), "", src)
	if err != nil {
		t.Fatalf("Eval(%q): %v", src, err)
	}
	if !r.Value.IsValid() {
		return ""
	}
	return fmt.Sprint(r.Value.Interface())
}

func evalErr(t *testing.T, it *Interpreter, src string) *Error {
	t.Helper()
	_, err := it.Eval(context.Background(), "", src)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Eval(%q) = %v, want an *Error", src, err)
	}
	return e
}

// The traps of yaegi v0.16 the kernel works around, each with the form a
// notebook writes.
func TestTraps(t *testing.T) {
	it, _ := newTest(t)
	cases := []struct{ name, src, want string }{
		{"func declaration sharing a cell with statements", "x := 1\nfunc f() int { return 41 }\ny := f() + x\ny", "42"},
		{"statements, then a type with a method, then statements", "type P struct{ A int }\nfunc (p P) Get() int { return p.A * y }\np := P{2}\np.Get()", "84"},
		{"*new(true)", "b := *new(true)\nb", "true"},
		{"new(false) in a composite literal", "type O struct{ On *bool }\no := O{On: new(false)}\n*o.On", "false"},
		{"new of an int, a float and a string", "fmt.Sprint(*new(3), *new(2.5), *new(\"s\"))", "3 2.5s"},
		{"new of a composite literal", "pp := new(P{7})\npp.Get()", "294"},
		{"new of a conversion", "*new(int64(9))", "9"},
		{"new of a type still allocates", "*new(int)", "0"},
		{"for i := range 3", "s := 0\nfor i := range 3 { s += i }\ns", "3"},
		{"for range N with N a variable of the cell", "n := 4\nc := 0\nfor range n { c++ }\nc", "4"},
		{"for range N with N a global of an earlier cell", "for range n { c++ }\nc", "8"},
		{"range over len()", "xs := []string{\"a\", \"b\"}\nk := 0\nfor i := range len(xs) { k += i + 1 }\nk", "3"},
		{"range N inside a function, with the key's type", "func sum(n int64) int64 { var t int64; for i := range n { t += i }; return t }\nsum(5)", "10"},
		{"labelled range N with break", "m := 0\nouter:\nfor i := range 10 { for j := range 10 { if i*j > 20 { break outer }; m = i*10 + j } }\nm", "36"},
		{"if and for headers with semicolons", "w := 0\nif v := 2; v > 1 { w = v }\nfor i := 0; i < 3; i++ { w += i }\nloop:\nfor i := 0; i < 3; i++ { if i == 1 { break loop } }\nswitch q := w; q { case 5: w = 50 }\nw", "50"},
		{"if with a blank and an error in a top-level loop", "func two() (int, error) { return 1, nil }\ntot := 0\nfor i := 0; i < 3; i++ {\n\tif v, err := two(); err == nil { tot += v }\n\tif _, err := two(); err != nil { panic(err) }\n}\ntot", "3"},
		{"range over a slice is left alone", "t := 0\nfor i, v := range []int{5, 6} { t += i * v }\nt", "6"},
	}
	if _, err := it.Eval(context.Background(), "", `import "fmt"`); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if got := eval(t, it, c.src); got != c.want {
			t.Errorf("%s: %q = %q, want %q", c.name, c.src, got, c.want)
		}
	}
}

// A construct the interpreter cannot compile (here range over a function)
// is the cell's error, and the interpreter keeps its state.
func TestInterpreterFailureKeepsState(t *testing.T) {
	it, _ := newTest(t)
	eval(t, it, "kept := 17")
	e := evalErr(t, it, "s := 0\nfor x := range func(yield func(int) bool) { yield(1) } { s += x }")
	if e.Name != "InterpreterError" || !strings.Contains(e.Message, "interpreter failed") {
		t.Errorf("error = %+v, want an InterpreterError", e)
	}
	if got := eval(t, it, "kept + 1"); got != "18" {
		t.Errorf("after the failure kept + 1 = %q, want 18", got)
	}
}

func TestPanicIsTheCellsErrorWithPosition(t *testing.T) {
	it, _ := newTest(t)
	eval(t, it, "before := \"still here\"")
	e := evalErr(t, it, "func bad() {\n\tvar m map[string]int\n\tm[\"a\"] = 1\n}\nbad()")
	if e.Name != "panic" || !strings.Contains(e.Message, "assignment to entry in nil map") {
		t.Errorf("error = %+v, want the panic's message", e)
	}
	// (the interpreter's position of a panic is the statement it ran
	// last, not always the exact expression)
	if !regexp.MustCompile(`^cell\[2\]:\d+:\d+: panic: `).MatchString(e.Message) {
		t.Errorf("message %q does not start with the panic's position in cell[2]", e.Message)
	}
	if len(e.Trace) == 0 || !strings.Contains(e.Trace[0], "main.bad") {
		t.Errorf("trace %q does not name main.bad", e.Trace)
	}
	if got := eval(t, it, "before"); got != "still here" {
		t.Errorf("before = %q after the panic", got)
	}
	// os.Exit and log.Fatal panic instead of ending the process.
	e = evalErr(t, it, "import \"os\"\nos.Exit(3)")
	if !strings.Contains(e.Message, "os.Exit(3)") {
		t.Errorf("os.Exit error = %+v", e)
	}
}

func TestCompileErrorHasCellPosition(t *testing.T) {
	it, _ := newTest(t)
	e := evalErr(t, it, "a := 1\nb := a\nundefinedThing(b)")
	if e.Name != "CompileError" || e.Message != "cell[1]:3:1: undefined: undefinedThing" {
		t.Errorf("error = %+v, want cell[1]:3:1: undefined: undefinedThing", e)
	}
	e = evalErr(t, it, "x := (1 +")
	if e.Name != "CompileError" || !strings.HasPrefix(e.Message, "cell[2]:") {
		t.Errorf("syntax error = %+v", e)
	}
}

func TestOutputAndValues(t *testing.T) {
	it, out := newTest(t)
	eval(t, it, "import (\n\t\"fmt\"\n\t\"os\"\n\t\"strings\"\n)")
	if got := eval(t, it, `fmt.Println("hello")`); got != "" {
		t.Errorf("fmt.Println shows %q, want nothing", got)
	}
	eval(t, it, `fmt.Fprintln(os.Stdout, "to os.Stdout")`)
	if got := out.String(); got != "hello\nto os.Stdout\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := eval(t, it, "func nothing() {}\nnothing()"); got != "" {
		t.Errorf("a call without results shows %q", got)
	}
	if got := eval(t, it, "func two() (int, error) { return 2, nil }\ntwo()"); got != "2" {
		t.Errorf("a call with two results shows %q, want its first", got)
	}
	eval(t, it, "import \"context\"\nimport \"sort\"\nctx := context.Background()\nxs := []int{2, 1}")
	if got := eval(t, it, "sort.Ints(xs)"); got != "" {
		t.Errorf("a package function without results shows %q", got)
	}
	if got := eval(t, it, "var sb strings.Builder\nsb.Reset()"); got != "" {
		t.Errorf("a method without results shows %q", got)
	}
	if got := eval(t, it, "v := 3"); got != "" {
		t.Errorf("an assignment shows %q", got)
	}
}

// An interrupted loop stops, and the interpreter runs the next cell.
func TestInterrupt(t *testing.T) {
	started := make(chan struct{})
	it, err := New(&Options{Stdout: writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "started") {
			close(started)
		}
		return len(p), nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	eval(t, it, "import \"fmt\"\ncounter := 0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// "started" is printed from inside the loop, once counter has
		// moved: the interrupt can come before the loop's first turn
		// otherwise, and counter would rightly still be 0.
		_, err := it.Eval(ctx, "", "for { counter++; if counter == 1 { fmt.Println(\"started\") } }")
		done <- err
	}()
	<-started
	cancel()
	err = <-done
	var e *Error
	if !errors.As(err, &e) || e.Name != "interrupted" || len(e.Trace) != 0 {
		t.Fatalf("err = %v, want an interruption with the cell stopped", err)
	}
	if got := eval(t, it, "counter > 0"); got != "true" {
		t.Errorf("counter > 0 = %q after the interrupt", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestIsComplete(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"x := 1", "complete"},
		{"func f() {", "incomplete"},
		{"s := `abc", "incomplete"},
		{"x := )", "invalid"},
		{"", "complete"},
	} {
		if got, _ := IsComplete(c.src); got != c.want {
			t.Errorf("IsComplete(%q) = %s, want %s", c.src, got, c.want)
		}
	}
}

func TestCompleteAndInspect(t *testing.T) {
	it, _ := newTest(t)
	src := "aml.Dep"
	c := it.Complete(src, len(src))
	if c.Start != 4 || c.End != 7 || !contains(c.Matches, "Deploy") {
		t.Errorf("Complete(aml.Dep) = %+v, want Deploy replacing [4,7)", c)
	}
	eval(t, it, "import \"strings\"\nmyBuilder := &strings.Builder{}")
	c = it.Complete("myB", 3)
	if !contains(c.Matches, "myBuilder") {
		t.Errorf("Complete(myB) = %v", c.Matches)
	}
	c = it.Complete("myBuilder.Wr", 12)
	if !contains(c.Matches, "WriteString") {
		t.Errorf("Complete(myBuilder.Wr) = %v", c.Matches)
	}
	text, ok := it.Inspect("aml.Deploy(ctx", 6)
	if !ok || !strings.HasPrefix(text, "func aml.Deploy(context.Context, *aml.Workspace") {
		t.Errorf("Inspect(aml.Deploy) = %q, %v", text, ok)
	}
	text, ok = it.Inspect("webservice.DeployConfig", 15)
	if !ok || !strings.Contains(text, "AuthEnabled *bool") {
		t.Errorf("Inspect(webservice.DeployConfig) = %q, %v", text, ok)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
