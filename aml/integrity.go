package aml

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/aksml/aksml/errcode"
	bolt "go.etcd.io/bbolt"
)

// Integrity of the metadata database.
//
// bbolt keeps two meta pages with a checksum each, but no checksum over the
// data pages, and it trusts the file: a truncated file makes it read past
// the end of its memory map (a fault that kills the process), a damaged
// page makes it panic, and a damaged meta page makes it fall back to the
// previous commit without saying so. The workspace therefore
//
//   - checks both meta pages and the file size itself before every open
//     of the database (checkMetaFile);
//   - runs every bbolt call with memory faults turned into panics and
//     turns any panic into a DataLoss error (guard);
//   - keeps a sum of the SHA-256 of every bucket, key, value and sequence
//     number in the meta bucket, updated by every commit and verified before
//     every write and when the workspace is opened (sum.go), so a changed
//     byte anywhere in the data is noticed;
//   - runs bbolt's own consistency check (Tx.Check) when it opens.

// Keys of the meta bucket besides the format marker.
var (
	keySum     = []byte("sum")     // the content sum (sum.go; contentSumV2 in format 2)
	keyCreated = []byte("created") // RFC 3339 time the metadata was created
	bktBlobs   = []byte("blobs")   // blob digest (hex) → size, every blob a commit stored
)

// bbolt's on-disk meta page (go.etcd.io/bbolt/internal/common): a 16-byte
// page header, then magic, version, page size, flags (4 bytes each), the
// root bucket (root page id, sequence), the freelist page id, the
// high-water page id, the transaction id and an FNV-64a checksum of the
// bytes before it. Integers are in the machine's byte order (little-endian
// on every platform aksml supports).
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	metaOff        = 16
	metaSumOff     = metaOff + 56
	metaLen        = 64
	minBoltPageLen = 1024
)

type metaPage struct {
	valid    bool
	err      string // why it is invalid
	pageSize int
	pgid     uint64 // high-water mark: pages [0, pgid) are in use
	txid     uint64
}

func parseMetaPage(b []byte) metaPage {
	le := binary.LittleEndian
	if len(b) < metaOff+metaLen {
		return metaPage{err: "missing"}
	}
	m := b[metaOff : metaOff+metaLen]
	mp := metaPage{pageSize: int(le.Uint32(m[8:])), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
	h := fnv.New64a()
	h.Write(m[:56])
	switch {
	case le.Uint32(m[0:]) != boltMagic:
		mp.err = "not a bbolt meta page (bad magic number)"
	case le.Uint32(m[4:]) != boltVersion:
		mp.err = fmt.Sprintf("unsupported bbolt version %d", le.Uint32(m[4:]))
	case le.Uint64(m[56:]) != h.Sum64():
		mp.err = "checksum mismatch"
	default:
		mp.valid = true
	}
	return mp
}

// metaFileState says what checkMetaFile found.
type metaFileState struct {
	size    int64
	active  metaPage // the meta page bbolt will use
	warning string   // harmless damage (the older meta page), fixed by the next commit
}

// checkMetaFile checks the meta pages and the size of the bbolt file at
// path, so that bbolt is never handed a file it would crash on or silently
// roll back. It returns a DataLoss error describing the damage.
func checkMetaFile(path string) (metaFileState, error) {
	f, err := os.Open(path)
	if err != nil {
		return metaFileState{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return metaFileState{}, err
	}
	st := metaFileState{size: info.Size()}
	head := make([]byte, 4096)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return st, err
	}
	head = head[:n]
	m0 := parseMetaPage(head)
	pageSize := os.Getpagesize()
	if m0.valid {
		pageSize = m0.pageSize
	}
	var m1 metaPage
	if pageSize >= minBoltPageLen && pageSize <= 1<<16 {
		second := make([]byte, metaOff+metaLen)
		if n, _ := f.ReadAt(second, int64(pageSize)); n == len(second) {
			m1 = parseMetaPage(second)
		} else {
			m1 = metaPage{err: "missing"}
		}
	} else {
		m1 = metaPage{err: "unknown page size"}
	}
	dataLoss := func(format string, args ...any) error {
		return errcode.Errorf(errcode.DataLoss, "workspace metadata %s is damaged: "+format+
			"; nothing was changed — run aml.CheckWorkspace (aksml workspace check) to see what can be recovered",
			append([]any{path}, args...)...)
	}
	switch {
	case !m0.valid && !m1.valid:
		return st, dataLoss("both bbolt meta pages are invalid (page 0: %s; page 1: %s)", m0.err, m1.err)
	case m0.valid && m1.valid:
		st.active = m0
		if m1.txid > m0.txid {
			st.active = m1
		}
		if m0.pageSize != m1.pageSize {
			return st, dataLoss("the meta pages disagree on the page size (%d and %d)", m0.pageSize, m1.pageSize)
		}
	default:
		// One meta page is damaged. The pages alternate between commits
		// (commit T writes page T%2), so the damaged one held either the
		// commit before the intact one (harmless: it is rewritten by the next
		// commit) or the commit after it (the last commit would be lost).
		good, bad, badIdx := m0, m1, 1
		if m1.valid {
			good, bad, badIdx = m1, m0, 0
		}
		st.active = good
		if bad.txid+1 == good.txid && int(bad.txid%2) == badIdx {
			st.warning = fmt.Sprintf("meta page %d (transaction %d, older than the one in use) is damaged: %s", badIdx, bad.txid, bad.err)
			break
		}
		return st, dataLoss("meta page %d is damaged (%s); the intact page holds transaction %d, so the last commit may be lost", badIdx, bad.err, good.txid)
	}
	if ps := st.active.pageSize; ps < minBoltPageLen || ps > 1<<16 || ps&(ps-1) != 0 {
		return st, dataLoss("implausible page size %d", ps)
	}
	if need := int64(st.active.pgid) * int64(st.active.pageSize); st.size < need {
		return st, dataLoss("the file has %d bytes but its last commit uses %d (it was truncated)", st.size, need)
	}
	return st, nil
}

// guard runs fn, which calls into bbolt, with memory faults turned into
// panics, and turns a panic into a DataLoss error: bbolt panics (or reads
// outside its memory map) when a page of the file is damaged.
func guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			if !panicFromBolt() && !mappedFault(r) {
				panic(r)
			}
			err = errcode.Errorf(errcode.DataLoss,
				"workspace metadata %s is damaged: reading it failed (%v); run aml.CheckWorkspace (aksml workspace check) to see what can be recovered", path, r)
		}
	}()
	return fn()
}

// mappedFault reports whether r is a memory fault at an address that is
// not near nil: reading a slice bbolt returned that points past the end of
// its memory map (a length in a damaged page), wherever the read happens.
func mappedFault(r any) bool {
	f, ok := r.(interface{ Addr() uintptr })
	return ok && f.Addr() >= 1<<16
}

// panicFromBolt reports whether the panic being recovered was raised in
// bbolt (a damaged file) rather than in a caller's function running inside
// a transaction (a bug that must not be reported as damage). Called from a
// deferred function, it finds the first frame below the runtime's panic
// machinery.
func panicFromBolt() bool {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	inPanic := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic" || f.Function == "runtime.sigpanic":
			inPanic = true
		case inPanic && strings.HasPrefix(f.Function, "runtime."):
		case inPanic:
			return strings.HasPrefix(f.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}

// The content sum of format 2, kept to verify a workspace of that format
// before it is upgraded: a SHA-256 over every unit's path and hash, in
// order, where each bucket of the top-level buckets that hold buckets (a
// model name, an environment name, a record kind) is a unit, and so are
// the plain key/values of each top-level bucket (meta without the sum
// itself, blobs, modelrefs). A unit's hash covers its sequence number and
// every key and value in order. Format 3 replaced it (sum.go): every write
// rehashed each unit it changed, and a unit such as the service records
// grows with the workspace.

type unitHash [sha256.Size]byte

// hashUnit hashes the plain key/values of b (not its sub-buckets).
func hashUnit(b *bolt.Bucket, skipSum bool) unitHash {
	h := sha256.New()
	var lenBuf [binary.MaxVarintLen64]byte
	put := func(tag byte, x []byte) {
		h.Write([]byte{tag})
		h.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(x)))])
		h.Write(x)
	}
	h.Write(lenBuf[:binary.PutUvarint(lenBuf[:], b.Sequence())])
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			// A sub-bucket (bbolt gives nested buckets a nil value): its own
			// unit; its name is part of this one.
			put('B', k)
			continue
		}
		if skipSum && bytes.Equal(k, keySum) {
			continue
		}
		put('K', k)
		put('V', v)
	}
	var out unitHash
	h.Sum(out[:0])
	return out
}

// units lists the unit paths of tx in order, calling fn with each path and
// its bucket.
func units(tx *bolt.Tx, fn func(path string, b *bolt.Bucket, skipSum bool)) {
	c := tx.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		top := tx.Bucket(k)
		if top == nil {
			continue
		}
		fn(string(k), top, bytes.Equal(k, bktMeta))
		sc := top.Cursor()
		for sk, sv := sc.First(); sk != nil; sk, sv = sc.Next() {
			if sv != nil {
				continue
			}
			if sub := top.Bucket(sk); sub != nil {
				fn(string(k)+"\x00"+string(sk), sub, false)
			}
		}
	}
}

// contentSumV2 computes the format-2 content sum of tx (hex).
func contentSumV2(tx *bolt.Tx) string {
	hashes := map[string]unitHash{}
	units(tx, func(path string, b *bolt.Bucket, skipSum bool) { hashes[path] = hashUnit(b, skipSum) })
	h := sha256.New()
	var lenBuf [binary.MaxVarintLen64]byte
	for _, path := range slices.Sorted(maps.Keys(hashes)) {
		uh := hashes[path]
		h.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(path)))])
		h.Write([]byte(path))
		h.Write(uh[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkTx runs bbolt's consistency check (every reachable page once, no
// page both used and free, keys in order) and returns its findings.
func checkTx(tx *bolt.Tx) []error {
	var errs []error
	for err := range tx.Check() {
		errs = append(errs, err)
		if len(errs) >= 10 {
			errs = append(errs, errors.New("(more problems not listed)"))
			for range tx.Check() {
			}
			break
		}
	}
	return errs
}

// blobFiles lists the files of the blob store: digest (hex) → info. It
// stops after limit files when limit > 0.
func blobFiles(dir string, limit int) (map[string]fs.FileInfo, error) {
	out := map[string]fs.FileInfo{}
	root := filepath.Join(dir, blobsDirName, "sha256")
	errStop := errors.New("stop")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		out[d.Name()] = info
		if limit > 0 && len(out) >= limit {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return out, err
	}
	return out, nil
}

// createdTime reads the creation time of the metadata, or the zero time.
func createdTime(tx *bolt.Tx) time.Time {
	b := tx.Bucket(bktMeta)
	if b == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(b.Get(keyCreated)))
	return t
}

// recordBlob records in the blob list that the blob enc is stored.
func (ws *Workspace) recordBlob(tx *bolt.Tx, enc string, size int64) error {
	ws.touchBucket(tx, bktBlobs, nil)
	ws.touchKey(tx, bktBlobs, nil, []byte(enc))
	b, err := tx.CreateBucketIfNotExists(bktBlobs)
	if err != nil {
		return err
	}
	return b.Put([]byte(enc), fmt.Appendf(nil, "%d", size))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "y") {
		return fmt.Sprintf("%d %sies", n, word[:len(word)-1])
	}
	return fmt.Sprintf("%d %ss", n, word)
}
