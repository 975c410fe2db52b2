package gointerp

import (
	"go/scanner"
	"go/token"
)

// segKind classifies a top-level piece of a cell.
type segKind int

const (
	segStmt segKind = iota // a statement, or a var/const declaration
	segDecl                // an import, type, func or method declaration
)

// segment is a top-level piece of a cell: [start, end) byte offsets.
type segment struct {
	kind       segKind
	start, end int
}

// split cuts a cell into top-level segments at the semicolons (written or
// inserted at line ends) outside any brackets, classifying each. Imports,
// type declarations and func declarations go to the file level; everything
// else is a statement run in the cell's global scope. A cell that does not
// scan is returned whole as one statement segment: the parser reports the
// error with its position.
func split(src string) []segment {
	fset := token.NewFileSet()
	file := fset.AddFile("", -1, len(src))
	var s scanner.Scanner
	var scanErr bool
	s.Init(file, []byte(src), func(token.Position, string) { scanErr = true }, 0)

	type tok struct {
		pos int
		tok token.Token
		lit string
	}
	var toks []tok
	for {
		pos, t, lit := s.Scan()
		if t == token.EOF {
			break
		}
		toks = append(toks, tok{file.Offset(pos), t, lit})
	}
	if scanErr {
		return []segment{{segStmt, 0, len(src)}}
	}

	var segs []segment
	depth := 0
	begin := -1 // index in toks of the current segment's first token
	flush := func(endTok int) {
		if begin < 0 {
			return
		}
		end := len(src)
		if endTok < len(toks) {
			end = toks[endTok].pos
		}
		segs = append(segs, segment{classify(toks[begin:endTok], func(i int) (token.Token, string) {
			return toks[begin+i].tok, toks[begin+i].lit
		}), toks[begin].pos, end})
		begin = -1
	}
	// header is set between an if, for, switch or select keyword and the
	// brace opening its body: the semicolons there separate the header's
	// clauses, not statements.
	header := false
	for i, t := range toks {
		switch t.tok {
		case token.IF, token.FOR, token.SWITCH, token.SELECT:
			if depth == 0 {
				header = true
			}
		case token.LBRACE:
			if depth == 0 {
				header = false
			}
		}
		switch t.tok {
		case token.LPAREN, token.LBRACE, token.LBRACK:
			depth++
		case token.RPAREN, token.RBRACE, token.RBRACK:
			depth--
		}
		if depth == 0 && t.tok == token.SEMICOLON && !header {
			flush(i)
			continue
		}
		if begin < 0 {
			begin = i
		}
	}
	flush(len(toks))
	return segs
}

// classify tells a declaration from a statement by its first tokens: import,
// type, "func Name" and "func (recv) Name" declare; "func(...) {...}()" is an
// expression statement.
func classify[T any](toks []T, at func(int) (token.Token, string)) segKind {
	first, _ := at(0)
	switch first {
	case token.IMPORT, token.TYPE:
		return segDecl
	case token.FUNC:
	default:
		return segStmt
	}
	if len(toks) < 2 {
		return segStmt
	}
	if t, _ := at(1); t == token.IDENT {
		return segDecl
	}
	// func ( ... ) Name ( → a method; func ( ... ) { or ( → a literal.
	depth := 0
	for i := 1; i < len(toks); i++ {
		t, _ := at(i)
		switch t {
		case token.LPAREN:
			depth++
		case token.RPAREN:
			depth--
			if depth == 0 {
				if i+2 < len(toks) {
					n1, _ := at(i + 1)
					n2, _ := at(i + 2)
					if n1 == token.IDENT && (n2 == token.LPAREN || n2 == token.LBRACK) {
						return segDecl
					}
				}
				return segStmt
			}
		}
	}
	return segStmt
}
