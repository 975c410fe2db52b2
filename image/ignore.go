package image

import (
	"bytes"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// The ignore files PackageSource reads, in order of preference within one
// directory: a directory's .amlignore, when present, replaces its .gitignore,
// as Azure ML documents ("if both files exist, .amlignore is used").
const (
	AMLIgnoreFile = ".amlignore"
	GitIgnoreFile = ".gitignore"
)

// maxIgnoreBytes bounds one ignore file.
const maxIgnoreBytes = 1 << 20

// ParseIgnore reads the text of a .gitignore-syntax file found in the
// directory domain (path components below the packaged root; nil for the
// root) and returns its patterns in file order. Blank lines and comments are
// skipped; a UTF-8 byte-order mark and CR line endings are tolerated, so a
// file checked out on Windows reads the same. Matching follows git's rules
// (go-git's gitignore package): a later pattern overrides an earlier one,
// "!" re-includes, a trailing "/" matches directories only, a pattern with a
// slash is anchored to its file's directory, "**" spans directories.
func ParseIgnore(data []byte, domain []string) []gitignore.Pattern {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var ps []gitignore.Pattern
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		// git strips trailing spaces unless escaped; go-git does the same in
		// ParsePattern, but a line of "!" or "/" alone means nothing.
		switch strings.TrimRight(line, " ") {
		case "!", "/", "!/":
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, domain))
	}
	return ps
}

type ignorePattern = gitignore.Pattern

// ignoreMatcher holds the patterns in force while walking a tree: those of
// the ancestors' ignore files, then the current directory's, then the
// caller's extra patterns.
type ignoreMatcher struct {
	patterns []ignorePattern // from ignore files, outermost first
	extra    []ignorePattern // applied last
	m        gitignore.Matcher
}

func newIgnoreMatcher(extra []ignorePattern) *ignoreMatcher {
	return &ignoreMatcher{extra: extra, m: gitignore.NewMatcher(extra)}
}

// with returns the matcher for a directory whose ignore file holds ps.
func (m *ignoreMatcher) with(ps []ignorePattern) *ignoreMatcher {
	if len(ps) == 0 {
		return m
	}
	n := &ignoreMatcher{extra: m.extra}
	n.patterns = append(append(make([]ignorePattern, 0, len(m.patterns)+len(ps)), m.patterns...), ps...)
	all := append(append(make([]ignorePattern, 0, len(n.patterns)+len(n.extra)), n.patterns...), n.extra...)
	n.m = gitignore.NewMatcher(all)
	return n
}

// ignored reports whether the path (components from the root) is excluded.
func (m *ignoreMatcher) ignored(path []string, isDir bool) bool {
	return m.m.Match(path, isDir)
}
