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
	"k8s.io/utils/clock"
)

// On-disk layout of a workspace directory.
const (
	metaFileName  = "meta.db" // bbolt file with every record
	lockFileName  = "lock"    // flock'd: shared by readers, exclusive by writers
	blobsDirName  = "blobs"   // content-addressed store: blobs/sha256/ab/abcd…
	stageDirName  = "tmp"     // staging areas of registrations in progress
	formatVersion = 1         // bumped on incompatible layout changes
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
	for _, d := range []string{abs, filepath.Join(abs, blobsDirName, "sha256"), filepath.Join(abs, stageDirName)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, ioErr("create workspace directory", err)
		}
	}
	lockf, err := os.OpenFile(filepath.Join(abs, lockFileName), os.O_RDWR|os.O_CREATE, 0o644)
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

// init creates the buckets of a new workspace and checks the format of an
// existing one.
func (ws *Workspace) init(ctx context.Context) error {
	check := func(tx *bolt.Tx) (bool, error) {
		b := tx.Bucket(bktMeta)
		if b == nil {
			return false, nil
		}
		v := b.Get(keyFormat)
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return false, errcode.Errorf(errcode.FailedPrecondition, "workspace %s: unreadable format marker %q", ws.dir, v)
		}
		if n > formatVersion {
			return false, errcode.Errorf(errcode.FailedPrecondition,
				"workspace %s has format %d; this version of aksml reads format %d or older", ws.dir, n, formatVersion)
		}
		for _, name := range [][]byte{bktModels, bktModelRefs, bktEnvs, bktRecords} {
			if tx.Bucket(name) == nil {
				return false, nil
			}
		}
		return true, nil
	}
	// A missing or empty file (a process killed while creating the
	// workspace) is initialised under the exclusive lock below.
	if info, err := os.Stat(ws.dbPath); err == nil && info.Size() > 0 {
		var ok bool
		err := ws.view(ctx, func(tx *bolt.Tx) error {
			var err error
			ok, err = check(tx)
			return err
		})
		if err != nil || ok {
			return err
		}
	}
	return ws.update(ctx, func(tx *bolt.Tx) error {
		if ok, err := check(tx); err != nil || ok {
			return err
		}
		for _, name := range [][]byte{bktMeta, bktModels, bktModelRefs, bktEnvs, bktRecords} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bktMeta).Put(keyFormat, []byte(strconv.Itoa(formatVersion)))
	})
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

// openDB opens the bbolt file. The caller holds the workspace lock, so
// bbolt's own flock is free; the timeout only guards against a foreign
// process that opened meta.db directly.
func (ws *Workspace) openDB(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(ws.dbPath, 0o644, &bolt.Options{
		ReadOnly: readOnly,
		Timeout:  ws.lockTimeout,
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errcode.Errorf(errcode.FailedPrecondition, "workspace %s: metadata file is missing", ws.dir)
		}
		return nil, ioErr("open workspace metadata", err)
	}
	return db, nil
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
	err = db.View(func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
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
		ws.rdb.Close()
		ws.rdb = nil
		unlock(ws.lockf)
	}
}

// exclusive runs fn while holding the workspace lock exclusively, with the
// database open read-write.
func (ws *Workspace) exclusive(ctx context.Context, fn func(db *bolt.DB) error) error {
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
	db, err := ws.openDB(false)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

// update runs fn in a read-write transaction under the exclusive lock. An
// error from fn rolls the transaction back and is returned unchanged.
func (ws *Workspace) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return ws.exclusive(ctx, func(db *bolt.DB) error {
		var fnErr error
		err := db.Update(func(tx *bolt.Tx) error {
			fnErr = fn(tx)
			return fnErr
		})
		if fnErr != nil {
			return fnErr
		}
		if err != nil {
			return ioErr("commit workspace transaction", err)
		}
		return nil
	})
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
