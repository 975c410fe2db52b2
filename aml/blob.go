package aml

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aksml/aksml/errcode"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// copyChunk is the unit of copying; the context is checked between chunks.
const copyChunk = 1 << 20

// testHook, when set by a test, is called at named points of a
// registration: "copy" after each copied chunk, "precommit" inside the
// metadata transaction just before it commits. Tests use it to pause a child
// process at a known point and SIGKILL it there.
var testHook func(point string)

func hook(point string) {
	if testHook != nil {
		testHook(point)
	}
}

// blobPath returns where the blob with digest d lives.
func (ws *Workspace) blobPath(d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(ws.dir, blobsDirName, string(d.Algorithm()), enc[:2], enc)
}

// BlobPath returns the path of the stored file with digest d. The file is
// read-only and shared by every model version that contains that content:
// never modify it. It fails with InvalidArgument for a malformed digest and
// NotFound when no such blob is stored.
func (ws *Workspace) BlobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", errcode.Errorf(errcode.InvalidArgument, "digest %q: %v", d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", errcode.Errorf(errcode.InvalidArgument, "digest %q: only sha256 is stored", d)
	}
	p := ws.blobPath(d)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errcode.Errorf(errcode.NotFound, "blob %s is not stored in workspace %s", d, ws.dir)
		}
		return "", ioErr("stat blob", err)
	}
	return p, nil
}

// staging is the private area where one registration copies files before it
// takes the workspace lock. DIR/tmp/B.lock is flock'd for as long as the
// registration runs; DIR/tmp/B.d holds the copies. Anyone who can take the
// lock of an area may delete it (its owner died).
type staging struct {
	lock *os.File
	dir  string
	n    int
}

func (ws *Workspace) newStaging() (*staging, error) {
	root := filepath.Join(ws.dir, stageDirName)
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		base := filepath.Join(root, "reg-"+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(base+".lock", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, ioErr("create staging area", err)
		}
		if ok, err := tryLock(f, true); err != nil || !ok {
			// Someone cleaning up grabbed it first; try another name.
			f.Close()
			continue
		}
		// A cleaner may have locked, deleted and released the file between
		// our create and our lock: make sure the path is still ours.
		if !sameFile(f, base+".lock") {
			f.Close()
			continue
		}
		if err := os.Mkdir(base+".d", 0o700); err != nil {
			os.Remove(base + ".lock")
			f.Close()
			return nil, ioErr("create staging area", err)
		}
		return &staging{lock: f, dir: base + ".d"}, nil
	}
	return nil, errcode.New(errcode.Internal, "could not create a staging area")
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// close removes the staging area: the directory first, then the lock file.
func (s *staging) close() {
	os.RemoveAll(s.dir)
	os.Remove(strings.TrimSuffix(s.dir, ".d") + ".lock")
	unlock(s.lock)
	s.lock.Close()
}

// stagedFile is one file copied into a staging area.
type stagedFile struct {
	tmp    string
	digest digest.Digest
	size   int64
}

// stage copies src into the staging area, hashing as it goes, and fsyncs the
// copy.
func (s *staging) stage(ctx context.Context, src string) (stagedFile, error) {
	in, err := os.Open(src)
	if err != nil {
		return stagedFile{}, errcode.Errorf(errcode.InvalidArgument, "model_path: %v", err)
	}
	defer in.Close()
	s.n++
	tmp := filepath.Join(s.dir, fmt.Sprintf("%06d", s.n))
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return stagedFile{}, ioErr("create staged file", err)
	}
	defer out.Close()
	dg := digest.SHA256.Digester()
	buf := make([]byte, copyChunk)
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			return stagedFile{}, ctxErr(err)
		}
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			dg.Hash().Write(buf[:n])
			if _, err := out.Write(buf[:n]); err != nil {
				return stagedFile{}, ioErr("write staged file", err)
			}
			size += int64(n)
			hook("copy")
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return stagedFile{}, errcode.Errorf(errcode.InvalidArgument, "model_path: read %s: %v", src, rerr)
		}
	}
	if err := out.Sync(); err != nil {
		return stagedFile{}, ioErr("sync staged file", err)
	}
	if err := out.Close(); err != nil {
		return stagedFile{}, ioErr("close staged file", err)
	}
	return stagedFile{tmp: tmp, digest: dg.Digest(), size: size}, nil
}

// commitBlobs moves staged files into the blob store. The caller holds the
// exclusive workspace lock, so GC cannot run between this and the metadata
// commit that references the blobs. Content already stored is not moved
// (equal content is stored once). Directories touched are fsync'd so the
// renames are durable before the metadata commit.
func (ws *Workspace) commitBlobs(files []stagedFile) error {
	dirs := map[string]bool{}
	for _, f := range files {
		dst := ws.blobPath(f.digest)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		parent := filepath.Dir(dst)
		if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(parent, 0o700); err != nil {
				return ioErr("create blob directory", err)
			}
			dirs[filepath.Dir(parent)] = true
		}
		if err := os.Rename(f.tmp, dst); err != nil {
			return ioErr("store blob", err)
		}
		dirs[parent] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return ioErr("sync blob directory", err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// cleanStaging removes the staging areas of registrations whose process
// died. Areas of live registrations are locked and left alone.
func (ws *Workspace) cleanStaging() (removed int) {
	root := filepath.Join(ws.dir, stageDirName)
	entries, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	bases := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".lock"):
			bases[strings.TrimSuffix(name, ".lock")] = true
		case strings.HasSuffix(name, ".d"):
			bases[strings.TrimSuffix(name, ".d")] = true
		}
	}
	for b := range bases {
		base := filepath.Join(root, b)
		f, err := os.OpenFile(base+".lock", os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			// The owner creates the lock file before the directory and
			// removes it after: a directory without it is an orphan.
			if _, err := os.Stat(base + ".d"); err == nil {
				os.RemoveAll(base + ".d")
				removed++
			}
			continue
		}
		if err != nil {
			continue
		}
		ok, err := tryLock(f, true)
		if err != nil || !ok || !sameFile(f, base+".lock") {
			if ok {
				unlock(f)
			}
			f.Close()
			continue
		}
		os.RemoveAll(base + ".d")
		os.Remove(base + ".lock")
		unlock(f)
		f.Close()
		removed++
		ws.log.Debug("removed stale staging area", "path", base)
	}
	return removed
}

// GCResult reports what GC removed.
type GCResult struct {
	// BlobsRemoved counts stored files no model version references.
	BlobsRemoved int
	// BytesFreed is their total size.
	BytesFreed int64
	// StagingRemoved counts staging areas left by killed registrations.
	StagingRemoved int
}

// GC removes blobs that no model version references (left by deleted models
// or by registrations killed after storing their files but before
// committing) and staging areas of dead registrations. It holds the
// workspace lock exclusively while it runs, so it never removes a blob that a
// concurrent registration is about to reference.
//
// GC deletes only what it can prove unreferenced: a file the metadata
// recorded when it was stored, or one stored after the metadata was
// created (a registration killed before its commit). A file older than the
// metadata that the metadata never recorded means the metadata was reset or
// replaced; then GC deletes nothing and fails with FailedPrecondition,
// naming how many such files there are (see CheckWorkspace).
func (ws *Workspace) GC(ctx context.Context) (GCResult, error) {
	var res GCResult
	err := ws.update(ctx, func(tx *bolt.Tx) error {
		used := map[string]bool{}
		err := forEachModel(tx, func(r *Model) error {
			for _, f := range r.Files {
				used[f.Digest.Encoded()] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		known := tx.Bucket(bktBlobs)
		created := createdTime(tx)
		files, err := blobFiles(ws.dir, 0)
		if err != nil {
			return ioErr("scan blob store", err)
		}
		var doomed []string
		unknown := 0
		for enc, info := range files {
			switch {
			case used[enc]:
			case known != nil && known.Get([]byte(enc)) != nil,
				!created.IsZero() && !info.ModTime().Before(created):
				doomed = append(doomed, enc)
			default:
				unknown++
			}
		}
		if unknown > 0 {
			return errcode.Errorf(errcode.FailedPrecondition,
				"workspace %s: GC deleted nothing: %s in the blob store predate the metadata (created %s) and were never recorded by it, "+
					"so the metadata looks reset or replaced; run aml.CheckWorkspace (aksml workspace check)",
				ws.dir, plural(unknown, "file"), created.Format(time.RFC3339))
		}
		for _, enc := range doomed {
			if err := ctx.Err(); err != nil {
				return ctxErr(err)
			}
			d := digest.NewDigestFromEncoded(digest.SHA256, enc)
			if len(enc) < 2 || d.Validate() != nil {
				continue // not a blob name this store writes; leave it alone
			}
			if err := os.Remove(ws.blobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return ioErr("remove blob", err)
			}
			res.BlobsRemoved++
			res.BytesFreed += files[enc].Size()
		}
		// Forget every recorded blob no model uses: removed just now, or
		// already gone.
		if known != nil {
			var stale [][]byte
			known.ForEach(func(k, _ []byte) error {
				if !used[string(k)] {
					stale = append(stale, append([]byte{}, k...))
				}
				return nil
			})
			for _, k := range stale {
				ws.touchKey(tx, bktBlobs, nil, k)
				if err := known.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.StagingRemoved = ws.cleanStaging()
	return res, nil
}

// Check verifies the workspace: every file of every model version is in
// the blob store with the recorded size and digest, and every model digest
// matches its file list. It returns nil, or an Internal error listing every
// problem. It reads every stored byte, so it takes time on large workspaces.
func (ws *Workspace) Check(ctx context.Context) error {
	var recs []*Model
	err := ws.view(ctx, func(tx *bolt.Tx) error {
		return forEachModel(tx, func(r *Model) error {
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return err
	}
	var errs []error
	checked := map[digest.Digest]error{}
	for _, r := range recs {
		id := modelID(r.Name, r.Version)
		if d := modelDigest(r.IsDir, r.Files); d != r.Digest {
			errs = append(errs, errcode.Errorf(errcode.Internal, "model %s: digest %s does not match its files (%s)", id, r.Digest, d))
		}
		for _, f := range r.Files {
			if err := ctx.Err(); err != nil {
				return ctxErr(err)
			}
			err, ok := checked[f.Digest]
			if !ok {
				err = ws.verifyBlob(f.Digest, f.Size)
				checked[f.Digest] = err
			}
			if err != nil {
				errs = append(errs, errcode.Errorf(errcode.Internal, "model %s file %s: %v", id, f.Path, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (ws *Workspace) verifyBlob(d digest.Digest, size int64) error {
	f, err := os.Open(ws.blobPath(d))
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := digest.SHA256.FromReader(f)
	if err != nil {
		return err
	}
	if got != d {
		return fmt.Errorf("blob content has digest %s, want %s", got, d)
	}
	info, err := f.Stat()
	if err == nil && info.Size() != size {
		return fmt.Errorf("blob has %d bytes, want %d", info.Size(), size)
	}
	return nil
}
