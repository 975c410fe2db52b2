package aml

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aksml/aksml/errcode"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// CheckOptions tunes CheckWorkspace. The zero value (or nil) gives the
// defaults.
type CheckOptions struct {
	// VerifyBlobs reads every stored model file and compares it with its
	// digest. Without it, files are checked for presence and size only.
	VerifyBlobs bool
}

// CheckReport is what CheckWorkspace found in a workspace directory: the
// state of its metadata, what of it can still be read, and the files of
// its blob store.
type CheckReport struct {
	// Dir is the workspace directory.
	Dir string
	// Metadata is the state of meta.db: "ok", "missing", "empty" or
	// "damaged".
	Metadata string
	// Problems lists every problem found, one sentence each; empty when
	// the workspace is healthy.
	Problems []string
	// Models counts the model versions whose record could be read, and
	// IntactModels those whose files are all in the blob store.
	Models, IntactModels int
	// Records counts the readable records by kind ("service", "compute",
	// "endpoint", …).
	Records map[string]int
	// Blobs counts the files in the blob store; Orphans lists those no
	// readable model version uses, by path: after a loss of metadata these
	// are the model files that can be registered again.
	Blobs   int
	Orphans []string
	// Recoverable says, in sentences, what can be recovered.
	Recoverable []string
}

// Healthy reports whether the check found no problem.
func (r *CheckReport) Healthy() bool { return len(r.Problems) == 0 }

// String renders the report for a terminal.
func (r *CheckReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workspace %s: metadata %s; %d model versions readable (%d intact); records %v; %d blob files (%d not used by a readable model)\n",
		r.Dir, r.Metadata, r.Models, r.IntactModels, r.Records, r.Blobs, len(r.Orphans))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	for _, p := range r.Recoverable {
		fmt.Fprintf(&b, "recoverable: %s\n", p)
	}
	return b.String()
}

// Err returns nil for a healthy workspace and otherwise a DataLoss error
// listing the problems.
func (r *CheckReport) Err() error {
	if r.Healthy() {
		return nil
	}
	return errcode.Errorf(errcode.DataLoss, "workspace %s: %s", r.Dir, strings.Join(r.Problems, "; "))
}

// CheckWorkspace examines the workspace in dir without changing it and
// without needing it to open: it works on a workspace whose meta.db is
// missing, empty or damaged, reads whatever can still be read, and reports
// what can be recovered (see CheckReport). It fails only when the
// directory cannot be read or ctx ends; damage is in the report. It takes
// the workspace lock shared, so it waits for writers in other processes.
func CheckWorkspace(ctx context.Context, dir string, opts *CheckOptions) (*CheckReport, error) {
	if opts == nil {
		opts = &CheckOptions{}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "workspace directory %q: %w", dir, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, errcode.Errorf(errcode.NotFound, "workspace directory %s: %v", abs, err)
	}
	rep := &CheckReport{Dir: abs, Metadata: "ok", Records: map[string]int{}}
	problem := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	lockf, err := os.OpenFile(filepath.Join(abs, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, ioErr("open workspace lock", err)
	}
	defer lockf.Close()
	ws := &Workspace{dir: abs, dbPath: filepath.Join(abs, metaFileName), lockf: lockf,
		log: slog.New(slog.DiscardHandler), lockTimeout: defaultLock}
	if err := ws.acquire(ctx, false); err != nil {
		return nil, err
	}
	defer unlock(lockf)

	blobs, err := blobFiles(abs, 0)
	if err != nil {
		return nil, ioErr("scan blob store", err)
	}
	rep.Blobs = len(blobs)
	used := map[string]bool{}

	info, err := os.Stat(ws.dbPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rep.Metadata = "missing"
	case err != nil:
		return nil, ioErr("stat workspace metadata", err)
	case info.Size() == 0:
		rep.Metadata = "empty"
	}
	if rep.Metadata != "ok" {
		if len(blobs) > 0 {
			problem("meta.db is %s beside %s: every model, environment, service and key record is lost", rep.Metadata, plural(len(blobs), "stored file"))
		}
	} else {
		ws.checkMetadata(ctx, rep, used, opts, problem)
	}

	for enc, info := range blobs {
		if used[enc] {
			continue
		}
		if len(enc) < 2 {
			continue
		}
		rep.Orphans = append(rep.Orphans, filepath.Join(abs, blobsDirName, "sha256", enc[:2], enc))
		_ = info
	}
	sort.Strings(rep.Orphans)
	if rep.Models > 0 {
		rep.Recoverable = append(rep.Recoverable, fmt.Sprintf("%s readable, %d of them with every file intact", plural(rep.Models, "model version"), rep.IntactModels))
	}
	kinds := make([]string, 0, len(rep.Records))
	for k := range rep.Records {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		rep.Recoverable = append(rep.Recoverable, fmt.Sprintf("%s readable", plural(rep.Records[k], k+" record")))
	}
	if len(rep.Orphans) > 0 && !rep.Healthy() {
		rep.Recoverable = append(rep.Recoverable, fmt.Sprintf(
			"%s in the blob store that no readable model uses: their content is intact and can be registered again with RegisterModel (listed in Orphans; names and versions were in the lost metadata)",
			plural(len(rep.Orphans), "file")))
	}
	return rep, nil
}

// checkMetadata reads what it can of meta.db into rep.
func (ws *Workspace) checkMetadata(ctx context.Context, rep *CheckReport, used map[string]bool, opts *CheckOptions, problem func(string, ...any)) {
	st, err := checkMetaFile(ws.dbPath)
	if err != nil {
		rep.Metadata = "damaged"
		problem("%v", errText(err))
		if !st.active.valid {
			return
		}
		// One meta page is intact: bbolt can read the state it points
		// to (the commit before the last one).
		if need := int64(st.active.pgid) * int64(st.active.pageSize); st.size < need {
			return
		}
	}
	var db *bolt.DB
	err = guard(ws.dbPath, func() error {
		var err error
		db, err = bolt.Open(ws.dbPath, 0o600, &bolt.Options{ReadOnly: true, Timeout: ws.lockTimeout})
		return err
	})
	if err != nil {
		rep.Metadata = "damaged"
		problem("bbolt cannot open meta.db: %v", errText(err))
		return
	}
	defer ws.closeDB(db)
	err = guard(ws.dbPath, func() error {
		return db.View(func(tx *bolt.Tx) error {
			if _, err := verifySum(tx, ws.dbPath); err != nil {
				rep.Metadata = "damaged"
				problem("the content does not match the checksum of the last commit: a record was altered or lost")
			}
			return nil
		})
	})
	if err != nil {
		rep.Metadata = "damaged"
		problem("reading meta.db failed: %v", errText(err))
	}
	if rep.Metadata == "ok" {
		_ = guard(ws.dbPath, func() error {
			return db.View(func(tx *bolt.Tx) error {
				if errs := checkTx(tx); len(errs) > 0 {
					rep.Metadata = "damaged"
					problem("bbolt's consistency check: %v", errors.Join(errs...))
				}
				return nil
			})
		})
	}
	// Salvage: read bucket by bucket, each guarded, so one damaged page
	// costs only what it holds.
	var models []*Model
	salvage := func(what string, fn func(tx *bolt.Tx) error) {
		err := guard(ws.dbPath, func() error { return db.View(fn) })
		if err != nil {
			rep.Metadata = "damaged"
			problem("%s: %v", what, errText(err))
		}
	}
	salvage("reading model records", func(tx *bolt.Tx) error {
		b := tx.Bucket(bktModels)
		if b == nil {
			return errors.New("the models bucket is missing")
		}
		return b.ForEachBucket(func(name []byte) error {
			return guard(ws.dbPath, func() error {
				return b.Bucket(name).ForEach(func(k, v []byte) error {
					m, err := decodeModel(v)
					if err != nil {
						problem("model %s version key %x: %v", name, k, errText(err))
						return nil
					}
					models = append(models, m)
					return nil
				})
			})
		})
	})
	salvage("reading records", func(tx *bolt.Tx) error {
		b := tx.Bucket(bktRecords)
		if b == nil {
			return errors.New("the records bucket is missing")
		}
		return b.ForEachBucket(func(kind []byte) error {
			return guard(ws.dbPath, func() error {
				return b.Bucket(kind).ForEach(func(k, v []byte) error {
					if v != nil {
						rep.Records[string(kind)]++
					}
					return nil
				})
			})
		})
	})
	rep.Models = len(models)
	checked := map[digest.Digest]error{}
	for _, m := range models {
		intact := true
		for _, f := range m.Files {
			if ctx.Err() != nil {
				return
			}
			used[f.Digest.Encoded()] = true
			err, ok := checked[f.Digest]
			if !ok {
				if opts.VerifyBlobs {
					err = ws.verifyBlob(f.Digest, f.Size)
				} else if info, serr := os.Stat(ws.blobPath(f.Digest)); serr != nil {
					err = serr
				} else if info.Size() != f.Size {
					err = fmt.Errorf("blob has %d bytes, want %d", info.Size(), f.Size)
				}
				checked[f.Digest] = err
			}
			if err != nil {
				intact = false
				problem("model %s file %s: %v", m.ID(), f.Path, err)
			}
		}
		if intact {
			rep.IntactModels++
		}
	}
}

// errText is the message of err without the advice to run CheckWorkspace.
func errText(err error) string {
	s := err.Error()
	if i := strings.Index(s, "; run aml.CheckWorkspace"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "; nothing was changed"); i >= 0 {
		s = s[:i]
	}
	return s
}
