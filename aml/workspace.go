package aml

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aksml/aksml/compute"
	"github.com/aksml/aksml/errcode"
	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"
	"k8s.io/utils/clock"
)

// On-disk layout of a workspace directory.
const (
	metaFileName  = "meta.db" // bbolt file with every record
	lockFileName  = "lock"    // flock'd: shared by readers, exclusive by writers
	blobsDirName  = "blobs"   // content-addressed store: blobs/sha256/ab/abcd…
	stageDirName  = "tmp"     // staging areas of registrations in progress
	formatVersion = 3         // bumped on incompatible layout changes (2: content checksum, blob list; 3: content sum updated per item)
	defaultLock   = time.Minute
)

// Top-level bbolt buckets.
var (
	bktMeta      = []byte("meta")         // "format" → formatVersion
	bktModels    = []byte("models")       // model name → bucket(version → Model JSON)
	bktModelRefs = []byte("modelrefs")    // user → JSON list of model IDs
	bktEnvs      = []byte("environments") // env name → bucket(version → Environment JSON)
	bktRecords   = []byte("records")      // kind → bucket(name → value)
	keyFormat    = []byte("format")
)

// OpenOptions tunes Open. The zero value (or nil) gives the defaults.
type OpenOptions struct {
	// Clock stamps CreatedTime on models and environments. Default: the real clock.
	Clock clock.PassiveClock
	// Logger receives debug and warning records. Default: discard.
	Logger *slog.Logger
	// LockTimeout bounds how long one operation waits for another process
	// that holds the workspace lock. Default: one minute. Waiting uses real
	// time (it waits on other processes), not Clock.
	LockTimeout time.Duration
}

// Workspace is a directory that holds registered models, environments and
// the records other packages keep (compute targets, services, endpoints).
// It mirrors azureml.core.Workspace, with the Azure service replaced by an
// embedded store:
//
//   - metadata lives in a bbolt database (DIR/meta.db);
//   - model files live in a content-addressed blob store
//     (DIR/blobs/sha256/XX/DIGEST), so files with equal content are stored once.
//
// A Workspace is safe for concurrent use by goroutines, and several
// processes may open the same directory at once. Each operation takes a
// file lock (shared for reads, exclusive for writes), opens the database,
// runs one transaction and closes it again, so no process keeps others out
// between operations. Model files are copied and fsync'd into a staging area
// before the lock is taken; under the lock they are renamed into the blob
// store and the metadata is committed. A process killed at any point of a
// registration therefore leaves either the whole new version or nothing
// (at most some unreferenced files, which GC removes).
type Workspace struct {
	dir         string
	dbPath      string
	clock       clock.PassiveClock
	log         *slog.Logger
	lockTimeout time.Duration

	mu     sync.RWMutex // writers exclusive, readers shared, within this process
	lockf  *os.File     // the flock'd lock file; nil once closed
	closed bool

	// verifiedTx is the last committed transaction whose content sum this
	// process wrote or verified, and sum that sum; a write that starts from
	// it skips the verification and updates the sum with the items it
	// touches, collected in changes. Guarded by mu (used under the
	// exclusive lock).
	verifiedTx int
	sum        sumState
	changes    *txChanges

	rmu     sync.Mutex // guards readers and rdb
	readers int
	rdb     *bolt.DB // read-only handle shared by concurrent readers

	local compute.Local // what this process runs that has no stored form (Go handlers)
}

// Open opens the workspace in dir, creating the directory and an empty
// workspace if needed. Stale staging areas left by killed processes are
// removed. Close releases it.
func Open(ctx context.Context, dir string, opts *OpenOptions) (*Workspace, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	if dir == "" {
		return nil, errcode.New(errcode.InvalidArgument, "workspace directory is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, errcode.Errorf(errcode.InvalidArgument, "workspace directory %q: %w", dir, err)
	}
	// The directory holds the service keys: only its owner may enter it.
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, ioErr("create workspace directory", err)
	}
	if err := fixMode(abs, 0o700); err != nil {
		return nil, ioErr("restrict workspace directory permissions", err)
	}
	for _, d := range []string{filepath.Join(abs, blobsDirName, "sha256"), filepath.Join(abs, stageDirName)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, ioErr("create workspace directory", err)
		}
	}
	lockf, err := os.OpenFile(filepath.Join(abs, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, ioErr("open workspace lock", err)
	}
	ws := &Workspace{
		dir:         abs,
		dbPath:      filepath.Join(abs, metaFileName),
		clock:       opts.Clock,
		log:         opts.Logger,
		lockTimeout: opts.LockTimeout,
		lockf:       lockf,
	}
	if ws.clock == nil {
		ws.clock = clock.RealClock{}
	}
	if ws.log == nil {
		ws.log = slog.New(slog.DiscardHandler)
	}
	if ws.lockTimeout <= 0 {
		ws.lockTimeout = defaultLock
	}
	if err := ws.init(ctx); err != nil {
		lockf.Close()
		return nil, err
	}
	ws.cleanStaging()
	return ws, nil
}

// init creates a new workspace, upgrades one of an older format, and
// verifies an existing one: the meta pages and file size, the format, the
// content checksum and bbolt's page consistency. It holds the exclusive lock
// while it does, so it sees no half-done commit of another process.
//
// A missing or empty meta.db is a new workspace only while the blob store
// is empty: beside stored model files it means the metadata was lost, and
// creating an empty workspace over them would make the next GC delete them.
func (ws *Workspace) init(ctx context.Context) error {
	return ws.exclusiveRaw(ctx, func() error {
		info, err := os.Stat(ws.dbPath)
		switch {
		case errors.Is(err, os.ErrNotExist), err == nil && info.Size() == 0:
			state := "missing"
			if err == nil {
				state = "empty (0 bytes)"
			}
			blobs, berr := blobFiles(ws.dir, 0)
			if berr != nil {
				return ioErr("scan blob store", berr)
			}
			if len(blobs) > 0 {
				return errcode.Errorf(errcode.DataLoss,
					"workspace %s: its metadata file %s is %s, but the blob store holds %s: the registry of models, services and keys was lost. "+
						"The workspace is not re-created over the stored files; restore %s from a backup, or run aml.CheckWorkspace (aksml workspace check) to see what can be recovered",
					ws.dir, metaFileName, state, plural(len(blobs), "model file"), metaFileName)
			}
			return ws.create()
		case err != nil:
			return ioErr("open workspace metadata", err)
		}
		if fixMode(ws.dbPath, 0o600) != nil {
			ws.log.Warn("could not restrict the permissions of the workspace metadata", "path", ws.dbPath)
		}
		db, err := ws.openDB(false)
		if err != nil {
			return err
		}
		defer ws.closeDB(db)
		return guard(ws.dbPath, func() error {
			var format int
			var migrate bool
			err := db.View(func(tx *bolt.Tx) error {
				b := tx.Bucket(bktMeta)
				if b == nil {
					return errcode.Errorf(errcode.DataLoss, "workspace metadata %s is damaged: it has no format marker (bucket %q is missing)", ws.dbPath, bktMeta)
				}
				v := b.Get(keyFormat)
				n, err := strconv.Atoi(string(v))
				if err != nil {
					return errcode.Errorf(errcode.DataLoss, "workspace metadata %s is damaged: unreadable format marker %q", ws.dbPath, v)
				}
				if n > formatVersion {
					return errcode.Errorf(errcode.FailedPrecondition,
						"workspace %s has format %d; this version of aksml reads format %d or older", ws.dir, n, formatVersion)
				}
				format = n
				sum, err := verifySum(tx, ws.dbPath)
				if err != nil {
					return err
				}
				ws.verifiedTx, ws.sum = tx.ID(), sum
				for _, name := range [][]byte{bktModels, bktModelRefs, bktEnvs, bktRecords, bktBlobs} {
					if tx.Bucket(name) == nil {
						migrate = true
					}
				}
				if format < formatVersion {
					migrate = true
				}
				if errs := checkTx(tx); len(errs) > 0 {
					return errcode.Errorf(errcode.DataLoss, "workspace metadata %s is damaged: bbolt's consistency check failed: %w; "+
						"run aml.CheckWorkspace (aksml workspace check) to see what can be recovered", ws.dbPath, errors.Join(errs...))
				}
				return nil
			})
			if err != nil || !migrate {
				return err
			}
			if format < 1 {
				return errcode.Errorf(errcode.DataLoss, "workspace metadata %s is damaged: format marker %d", ws.dbPath, format)
			}
			return ws.commit(db, ws.migrate)
		})
	})
}

// create makes the database of a new workspace. The caller holds the
// exclusive lock.
func (ws *Workspace) create() error {
	os.Remove(ws.dbPath) // an empty file left by a killed creation
	db, err := ws.openDBMode(false, true)
	if err != nil {
		return err
	}
	defer ws.closeDB(db)
	return guard(ws.dbPath, func() error {
		return ws.commit(db, func(tx *bolt.Tx) error {
			ws.markAll()
			for _, name := range [][]byte{bktMeta, bktModels, bktModelRefs, bktEnvs, bktRecords, bktBlobs} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			b := tx.Bucket(bktMeta)
			if err := b.Put(keyCreated, []byte(ws.fsNow().Format(time.RFC3339Nano))); err != nil {
				return err
			}
			return b.Put(keyFormat, []byte(strconv.Itoa(formatVersion)))
		})
	})
}

// migrate upgrades a workspace of an older format in one transaction, so a
// process killed during the upgrade leaves the old format or the new one:
//
//   - format 1 had no list of blobs (its metadata was trusted): every file
//     of the blob store is recorded as known, and the creation time is
//     stamped, so GC can tell the store's files from those of another
//     metadata file;
//   - format 2's content sum was one SHA-256 over units that grow with the
//     workspace: the commit stores the content sum of format 3, computed
//     from every item, in its place (commit verified the old one first).
func (ws *Workspace) migrate(tx *bolt.Tx) error {
	ws.markAll()
	format := storedFormat(tx)
	for _, name := range [][]byte{bktMeta, bktModels, bktModelRefs, bktEnvs, bktRecords, bktBlobs} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if format >= 2 {
		// The blob list and the creation time exist since format 2: a blob
		// file the list lacks was stored by no commit.
		return tx.Bucket(bktMeta).Put(keyFormat, []byte(strconv.Itoa(formatVersion)))
	}
	blobs, err := blobFiles(ws.dir, 0)
	if err != nil {
		return ioErr("scan blob store", err)
	}
	for enc, info := range blobs {
		if err := ws.recordBlob(tx, enc, info.Size()); err != nil {
			return err
		}
	}
	b := tx.Bucket(bktMeta)
	if b.Get(keyCreated) == nil {
		if err := b.Put(keyCreated, []byte(ws.fsNow().Format(time.RFC3339Nano))); err != nil {
			return err
		}
	}
	return b.Put(keyFormat, []byte(strconv.Itoa(formatVersion)))
}

// Dir returns the absolute path of the workspace directory.
func (ws *Workspace) Dir() string { return ws.dir }

// Close releases the workspace. It waits for operations in progress; later
// calls fail with FailedPrecondition. Close is idempotent.
func (ws *Workspace) Close() error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil
	}
	ws.closed = true
	err := ws.lockf.Close()
	ws.lockf = nil
	if err != nil {
		return ioErr("close workspace lock", err)
	}
	return nil
}

var errClosed = errcode.New(errcode.FailedPrecondition, "workspace is closed")

// acquire takes the cross-process lock, polling with a short back-off so
// that a waiter wakes up within a few milliseconds of the holder's release
// (bbolt's own lock polls every 50 ms). It honours ctx and LockTimeout.
func (ws *Workspace) acquire(ctx context.Context, exclusive bool) error {
	start := time.Now()
	delay := 100 * time.Microsecond
	for {
		ok, err := tryLock(ws.lockf, exclusive)
		if err != nil {
			return ioErr("lock workspace", err)
		}
		if ok {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return ctxErr(err)
		}
		if time.Since(start) > ws.lockTimeout {
			return errcode.Errorf(errcode.Unavailable,
				"workspace %s is locked by another process for more than %v", ws.dir, ws.lockTimeout)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctxErr(ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, 4*time.Millisecond)
	}
}

// openDB opens the bbolt file after checking its meta pages and size
// (checkMetaFile), so bbolt never maps a file it would crash on. The caller
// holds the workspace lock, so bbolt's own flock is free; the timeout only
// guards against a foreign process that opened meta.db directly.
func (ws *Workspace) openDB(readOnly bool) (*bolt.DB, error) {
	return ws.openDBMode(readOnly, false)
}

// openDBMode is openDB; with create, a missing file is created (a new
// workspace) instead of being reported as lost.
func (ws *Workspace) openDBMode(readOnly, create bool) (*bolt.DB, error) {
	st, err := checkMetaFile(ws.dbPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !create {
			return nil, errcode.Errorf(errcode.DataLoss,
				"workspace %s: metadata file %s was removed while the workspace was open; restore it from a backup or run aml.CheckWorkspace (aksml workspace check)", ws.dir, metaFileName)
		}
	case errors.Is(err, errcode.DataLoss):
		return nil, err
	case err != nil:
		return nil, ioErr("open workspace metadata", err)
	case st.warning != "":
		ws.log.Warn("workspace metadata: "+st.warning, "path", ws.dbPath)
	}
	var db *bolt.DB
	err = guard(ws.dbPath, func() error {
		var err error
		db, err = bolt.Open(ws.dbPath, 0o600, &bolt.Options{
			ReadOnly: readOnly,
			Timeout:  ws.lockTimeout,
		})
		return err
	})
	if err != nil {
		if errcode.Of(err) != nil {
			return nil, err
		}
		if errors.Is(err, bolterr.ErrInvalid) || errors.Is(err, bolterr.ErrChecksum) || errors.Is(err, bolterr.ErrVersionMismatch) {
			return nil, errcode.Errorf(errcode.DataLoss, "workspace metadata %s is damaged: %v; run aml.CheckWorkspace (aksml workspace check) to see what can be recovered", ws.dbPath, err)
		}
		return nil, ioErr("open workspace metadata", err)
	}
	return db, nil
}

// closeDB closes a database handle; a damaged file can make bbolt panic
// here too.
func (ws *Workspace) closeDB(db *bolt.DB) {
	_ = guard(ws.dbPath, db.Close)
}

// view runs fn in a read-only transaction. Concurrent readers of this
// process share one shared lock and one read-only database handle.
func (ws *Workspace) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	if ws.closed {
		return errClosed
	}
	db, err := ws.acquireShared(ctx)
	if err != nil {
		return err
	}
	defer ws.releaseShared()
	var fnErr error
	err = guard(ws.dbPath, func() error {
		return db.View(func(tx *bolt.Tx) error {
			fnErr = fn(tx)
			return fnErr
		})
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return ioErr("read workspace", err)
	}
	return nil
}

func (ws *Workspace) acquireShared(ctx context.Context) (*bolt.DB, error) {
	ws.rmu.Lock()
	defer ws.rmu.Unlock()
	if ws.readers == 0 {
		if err := ws.acquire(ctx, false); err != nil {
			return nil, err
		}
		db, err := ws.openDB(true)
		if err != nil {
			unlock(ws.lockf)
			return nil, err
		}
		ws.rdb = db
	}
	ws.readers++
	return ws.rdb, nil
}

func (ws *Workspace) releaseShared() {
	ws.rmu.Lock()
	defer ws.rmu.Unlock()
	ws.readers--
	if ws.readers == 0 {
		ws.closeDB(ws.rdb)
		ws.rdb = nil
		unlock(ws.lockf)
	}
}

// exclusiveRaw runs fn while holding the workspace lock exclusively.
func (ws *Workspace) exclusiveRaw(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(err)
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return errClosed
	}
	if err := ws.acquire(ctx, true); err != nil {
		return err
	}
	defer unlock(ws.lockf)
	return fn()
}

// exclusive runs fn while holding the workspace lock exclusively, with the
// database open read-write.
func (ws *Workspace) exclusive(ctx context.Context, fn func(db *bolt.DB) error) error {
	return ws.exclusiveRaw(ctx, func() error {
		db, err := ws.openDB(false)
		if err != nil {
			return err
		}
		defer ws.closeDB(db)
		return guard(ws.dbPath, func() error { return fn(db) })
	})
}

// update runs fn in a read-write transaction under the exclusive lock. An
// error from fn rolls the transaction back and is returned unchanged.
func (ws *Workspace) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return ws.exclusive(ctx, func(db *bolt.DB) error { return ws.commit(db, fn) })
}

// commit runs fn in a read-write transaction of db. Before fn it verifies
// the content checksum of the last commit (unless this process wrote or
// verified that very commit), so a damaged database is not blessed with a
// new checksum; after fn it stores the new one.
func (ws *Workspace) commit(db *bolt.DB, fn func(tx *bolt.Tx) error) error {
	var fnErr error
	var txid int
	var sum sumState
	ws.changes = &txChanges{items: map[itemKey]itemBefore{}}
	err := db.Update(func(tx *bolt.Tx) error {
		txid = tx.ID()
		base := ws.sum
		if ws.verifiedTx == 0 || ws.verifiedTx != txid-1 {
			if base, fnErr = verifySum(tx, ws.dbPath); fnErr != nil {
				return fnErr
			}
		}
		if fnErr = fn(tx); fnErr != nil {
			return fnErr
		}
		var err error
		sum, err = writeSum(tx, base, ws.changes)
		return err
	})
	ws.changes = nil
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		ws.verifiedTx, ws.sum = 0, sumState{}
		return ioErr("commit workspace transaction", err)
	}
	ws.verifiedTx, ws.sum = txid, sum
	return nil
}

// fsNow returns the file system's current time: the modification time of
// a file written now. GC compares it with blob modification times, which
// come from the same (often coarser) clock.
func (ws *Workspace) fsNow() time.Time {
	f, err := os.CreateTemp(filepath.Join(ws.dir, stageDirName), "now-*")
	if err == nil {
		defer os.Remove(f.Name())
		defer f.Close()
		if info, err := f.Stat(); err == nil {
			return info.ModTime().UTC()
		}
	}
	return time.Now().UTC()
}

// fixMode removes permission bits beyond mode from path (created by an
// older version or a loose umask).
func fixMode(path string, mode os.FileMode) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.Mode().Perm()&^mode != 0 {
		return os.Chmod(path, info.Mode().Perm()&mode)
	}
	return nil
}

// ioErr gives an error from the file system or bbolt its code:
// ResourceExhausted for a full disk, Internal otherwise.
func ioErr(op string, err error) error {
	if errcode.Of(err) != nil {
		return err
	}
	code := errcode.Internal
	if isNoSpace(err) {
		code = errcode.ResourceExhausted
	}
	return errcode.Errorf(code, "%s: %w", op, err)
}

// ctxErr gives a context error its code: DeadlineExceeded for a deadline,
// Unavailable for a cancellation. The context error stays reachable.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errcode.Wrap(errcode.DeadlineExceeded, err)
	}
	return errcode.Errorf(errcode.Unavailable, "operation canceled: %w", err)
}

// String describes the workspace for logs.
func (ws *Workspace) String() string { return fmt.Sprintf("aml.Workspace(%s)", ws.dir) }
