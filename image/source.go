package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aksml/aksml/errcode"
	"github.com/opencontainers/go-digest"
)

// epoch is the modification time of every entry PackageSource writes (the
// Unix epoch), so that the archive does not depend on when a file was
// checked out.
var epoch = time.Unix(0, 0).UTC()

// PackageOptions tunes PackageSource. The zero value (or nil) packages every
// file not excluded by the ignore files.
type PackageOptions struct {
	// Prefix is put before every entry name, as a directory ("src" gives
	// "src/score.py"). Empty means the archive's root.
	Prefix string
	// Exclude holds extra gitignore-syntax patterns applied at the root with
	// the highest priority (after every ignore file).
	Exclude []string
	// NoIgnoreFiles packages every file, reading no .amlignore or .gitignore
	// (for model directories).
	NoIgnoreFiles bool
	// MaxBytes bounds the total size of the packaged files; 0 means no
	// limit. Past it PackageSource fails with errcode.ResourceExhausted.
	MaxBytes int64
}

// Source is a packaged directory: a deterministic tar archive and its digest.
type Source struct {
	// Digest is the sha256 digest of the archive. It depends only on the
	// names, contents, executable bits and symlink targets of the packaged
	// files, so it is the same on every machine and checkout.
	Digest digest.Digest
	// Files lists the packaged files and symlinks, slash-separated, relative
	// to the directory (without Prefix), sorted.
	Files []string
	// Size is the total size of the packaged files' contents in bytes.
	Size int64

	tar []byte
}

// Tar returns the archive's bytes. The caller must not modify them.
func (s *Source) Tar() []byte { return s.tar }

// Has reports whether the package holds the file (slash path relative to
// the directory).
func (s *Source) Has(name string) bool {
	i := sort.SearchStrings(s.Files, name)
	return i < len(s.Files) && s.Files[i] == name
}

// PackageSource packages dir into a deterministic tar archive held in
// memory; see WriteSource for the rules.
func PackageSource(ctx context.Context, dir string, opts *PackageOptions) (*Source, error) {
	var buf bytes.Buffer
	src, err := WriteSource(ctx, &buf, dir, opts)
	if err != nil {
		return nil, err
	}
	src.tar = buf.Bytes()
	return src, nil
}

// WriteSource writes dir as a tar archive to w and returns its description
// (without the bytes). The archive is deterministic:
//
//   - entries sorted by path; directories appear only as parents of packaged
//     files (git keeps no empty directories, so neither does the archive);
//   - every mtime is the Unix epoch, owners are 0:0 with no names, modes are 0644 for
//     files, 0755 for executable files and directories, symlinks kept as
//     links (never followed);
//   - .git is never packaged; sockets, devices and pipes are skipped;
//   - in each directory, .amlignore (if present) or else .gitignore adds
//     rules for that directory and below, with git's semantics (nested files,
//     negation, anchoring, directory-only patterns); an excluded directory
//     is not entered, so nothing below it can be re-included, as in git.
//
// Errors: errcode.NotFound when dir does not exist, errcode.InvalidArgument
// when it is not a directory, errcode.FailedPrecondition when a file cannot
// be read for lack of permission, errcode.ResourceExhausted past MaxBytes.
func WriteSource(ctx context.Context, w io.Writer, dir string, opts *PackageOptions) (*Source, error) {
	if opts == nil {
		opts = &PackageOptions{}
	}
	prefix := strings.Trim(filepath.ToSlash(opts.Prefix), "/")
	if prefix != "" {
		if c, err := cleanRelPath(prefix); err != nil || c != prefix {
			return nil, errcode.Errorf(errcode.InvalidArgument, "package prefix %q must be a clean relative path", opts.Prefix)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fsError(err, "source directory %q", dir)
	}
	if !fi.IsDir() {
		return nil, errcode.Errorf(errcode.InvalidArgument, "source directory %q is not a directory", dir)
	}

	wk := &walker{ctx: ctx, root: dir, opts: opts}
	root := newIgnoreMatcher(ParseIgnore([]byte(strings.Join(opts.Exclude, "\n")), nil))
	if err := wk.walk(root, nil); err != nil {
		return nil, err
	}
	sort.Slice(wk.entries, func(i, j int) bool { return wk.entries[i].name < wk.entries[j].name })

	h := digest.SHA256.Digester()
	tw := tar.NewWriter(io.MultiWriter(w, h.Hash()))
	full := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "/" + name
	}
	// Parent directories of every packaged entry (and of the prefix).
	dirs := map[string]bool{}
	for _, e := range wk.entries {
		for d := path.Dir(full(e.name)); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var all []string
	for d := range dirs {
		all = append(all, d+"/")
	}
	for _, e := range wk.entries {
		all = append(all, full(e.name))
	}
	sort.Strings(all)
	byName := make(map[string]*entry, len(wk.entries))
	for i := range wk.entries {
		byName[full(wk.entries[i].name)] = &wk.entries[i]
	}

	src := &Source{}
	for _, name := range all {
		if err := ctx.Err(); err != nil {
			return nil, ctxError(err)
		}
		hdr := &tar.Header{Name: name, ModTime: epoch, Uid: 0, Gid: 0}
		e := byName[name]
		switch {
		case e == nil: // a directory
			hdr.Typeflag = tar.TypeDir
			hdr.Mode = 0o755
		case e.link != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.link
			hdr.Mode = 0o777
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Mode = 0o644
			if e.exec {
				hdr.Mode = 0o755
			}
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, errcode.Errorf(errcode.Internal, "packaging %s: %w", name, err)
		}
		if e == nil {
			continue
		}
		src.Files = append(src.Files, e.name)
		if e.link != "" {
			continue
		}
		if err := copyFile(tw, filepath.Join(dir, filepath.FromSlash(e.name)), e.size); err != nil {
			return nil, err
		}
		src.Size += e.size
	}
	if err := tw.Close(); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "packaging %s: %w", dir, err)
	}
	src.Digest = h.Digest()
	return src, nil
}

type entry struct {
	name string // slash path relative to the root
	size int64
	exec bool
	link string
}

type walker struct {
	ctx     context.Context
	root    string
	opts    *PackageOptions
	entries []entry
	size    int64
}

// walk packages the directory at rel (components below the root).
func (wk *walker) walk(m *ignoreMatcher, rel []string) error {
	if err := wk.ctx.Err(); err != nil {
		return ctxError(err)
	}
	abs := filepath.Join(append([]string{wk.root}, rel...)...)
	ents, err := os.ReadDir(abs)
	if err != nil {
		return fsError(err, "reading directory %q", abs)
	}
	if !wk.opts.NoIgnoreFiles {
		ps, err := readIgnoreFiles(abs, rel)
		if err != nil {
			return err
		}
		m = m.with(ps)
	}
	for _, de := range ents {
		name := de.Name()
		if name == ".git" {
			continue
		}
		p := append(append([]string(nil), rel...), name)
		t := de.Type()
		isDir := t.IsDir()
		if m.ignored(p, isDir) {
			continue
		}
		relName := strings.Join(p, "/")
		switch {
		case isDir:
			if err := wk.walk(m, p); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(abs, name))
			if err != nil {
				return fsError(err, "reading symlink %q", relName)
			}
			wk.entries = append(wk.entries, entry{name: relName, link: filepath.ToSlash(target)})
		case t.IsRegular():
			info, err := de.Info()
			if err != nil {
				return fsError(err, "reading %q", relName)
			}
			wk.size += info.Size()
			if wk.opts.MaxBytes > 0 && wk.size > wk.opts.MaxBytes {
				return errcode.Errorf(errcode.ResourceExhausted, "source directory %q holds more than %d bytes (at %s); exclude files with .amlignore", wk.root, wk.opts.MaxBytes, relName)
			}
			wk.entries = append(wk.entries, entry{name: relName, size: info.Size(), exec: info.Mode()&0o111 != 0})
		default:
			// sockets, devices, pipes: not source.
		}
	}
	return nil
}

// readIgnoreFiles returns the patterns of the directory's .amlignore, or of
// its .gitignore when it has no .amlignore.
func readIgnoreFiles(abs string, rel []string) ([]ignorePattern, error) {
	for _, name := range []string{AMLIgnoreFile, GitIgnoreFile} {
		p := filepath.Join(abs, name)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fsError(err, "reading ignore file %q", p)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if fi.Size() > maxIgnoreBytes {
			return nil, errcode.Errorf(errcode.InvalidArgument, "ignore file %q is %d bytes, above the limit of %d", p, fi.Size(), maxIgnoreBytes)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fsError(err, "reading ignore file %q", p)
		}
		return ParseIgnore(data, rel), nil
	}
	return nil, nil
}

func copyFile(w io.Writer, name string, size int64) error {
	f, err := os.Open(name)
	if err != nil {
		return fsError(err, "reading %q", name)
	}
	defer f.Close()
	n, err := io.CopyN(w, f, size)
	if err != nil && !errors.Is(err, io.EOF) {
		return errcode.Errorf(errcode.Internal, "packaging %q: %w", name, err)
	}
	if n != size {
		return errcode.Errorf(errcode.Unavailable, "%q changed size while being packaged; retry", name)
	}
	return nil
}

// FileDigest returns the sha256 digest of a file's content (for the scoring
// binary of a Spec).
func FileDigest(name string) (digest.Digest, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fsError(err, "file %q", name)
	}
	defer f.Close()
	d, err := digest.SHA256.FromReader(f)
	if err != nil {
		return "", errcode.Errorf(errcode.Internal, "reading %q: %w", name, err)
	}
	return d, nil
}

// fsError gives a file-system error its code.
func fsError(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errcode.Errorf(errcode.NotFound, "%s does not exist: %w", what, err)
	case errors.Is(err, fs.ErrPermission):
		return errcode.Errorf(errcode.FailedPrecondition, "%s cannot be read: %w", what, err)
	default:
		return errcode.Errorf(errcode.Internal, "%s: %w", what, err)
	}
}

// ctxError gives a context error its code.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errcode.Wrap(errcode.DeadlineExceeded, err)
	}
	return errcode.Wrap(errcode.Unavailable, err)
}
