// Package gointerp runs Go notebook cells with the yaegi interpreter, for
// cmd/aksml-kernel: aksml's packages and part of the standard library come
// compiled in (package symbols), every variable, type, function and import
// persists from one cell to the next, and every failure — a compile error, a
// panic, the interpreter's own crash, an interruption — is the cell's error
// while the interpreter keeps its state.
//
// Before compiling, a cell is split into declarations (compiled at package
// level) and statements (run in the global scope), in source order, and
// rewritten where yaegi v0.16 falls short: range over an integer, Go 1.26's
// new(value), and loops at the top level (see rewrite.go and wrapLoop).
// Complete, Inspect and IsComplete answer a front-end's completion,
// inspection and is-complete requests.
package gointerp
