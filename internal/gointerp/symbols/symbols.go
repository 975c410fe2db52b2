// Package symbols holds the yaegi symbol tables of the packages a notebook
// cell may import: a chosen part of the standard library and aksml's public
// packages, extracted from their source by `go generate` (see gen). Cells
// call the compiled code through these tables, so they run at compiled speed
// and see the library exactly as Go programs do.
//
// The tables are tied to the library's exported API: after a change to it,
// run `go generate ./internal/gointerp/symbols`; TestSymbolsUpToDate fails
// while they are stale.
package symbols

import "reflect"

//go:generate go run ./gen

// Symbols maps "importpath/name" to the package's exported symbols, the shape
// yaegi's Interpreter.Use takes.
var Symbols = map[string]map[string]reflect.Value{}
