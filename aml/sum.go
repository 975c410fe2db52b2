package aml

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/aksml/aksml/errcode"
	bolt "go.etcd.io/bbolt"
)

// The content sum of format 3.
//
// The sum is a multiset hash: the sum, modulo 2^256, of the SHA-256 of
// every item of the database, where an item is
//
//   - 'S': the path of a bucket and its sequence number, one for every
//     top-level bucket and every bucket inside one;
//   - 'K': a key and its value, with the path of their bucket (meta's
//     "sum" key, which holds the sum, is left out);
//   - 'B': the name of a bucket nested deeper than that, with its path
//     (the workspace makes none; one that appears changes the sum).
//
// Because the sum is a sum, a commit updates it by subtracting the hashes
// of the items it replaces and adding those of the items it stores, so the
// cost of a write grows with what it changes, not with the size of the
// workspace. Every write announces each key and bucket before it changes
// it (touchKey, touchBucket), which keeps the hash of the item as it was;
// the commit hashes the new ones. Buckets are never deleted.
//
// A changed, lost or added item changes the sum unless two 256-bit hashes
// collide; addition (rather than XOR) keeps a duplicated item from
// cancelling itself. Like format 2's SHA-256, the sum detects damage, not an
// attacker who can write the file (either could be recomputed).
//
// The stored value is sumPrefix and 64 hex digits, so that format 2's
// check, reading it, finds a mismatch rather than a match, and this one
// finds a mismatch reading a format-2 sum.

const sumPrefix = "v3:"

// itemHash is the SHA-256 of one item.
type itemHash [sha256.Size]byte

// sum256 is a number modulo 2^256, least significant 64 bits first.
type sum256 [4]uint64

func (s *sum256) add(h itemHash) {
	var c uint64
	for i := range 4 {
		s[i], c = bits.Add64(s[i], binary.BigEndian.Uint64(h[8*(3-i):]), c)
	}
}

func (s *sum256) sub(h itemHash) {
	var b uint64
	for i := range 4 {
		s[i], b = bits.Sub64(s[i], binary.BigEndian.Uint64(h[8*(3-i):]), b)
	}
}

// encode is the stored form: sumPrefix and the number in 64 hex digits.
func (s sum256) encode() []byte {
	var raw [32]byte
	for i := range 4 {
		binary.BigEndian.PutUint64(raw[8*(3-i):], s[i])
	}
	return append([]byte(sumPrefix), hex.EncodeToString(raw[:])...)
}

// itemHasher writes the fields of an item, each with its length.
type itemHasher struct {
	buf []byte
}

func (h *itemHasher) field(x []byte) {
	h.buf = binary.AppendUvarint(h.buf, uint64(len(x)))
	h.buf = append(h.buf, x...)
}

// start begins an item of tag in the bucket at path (top, or top/sub when
// sub is not nil).
func (h *itemHasher) start(tag byte, top, sub []byte) {
	h.buf = append(h.buf[:0], tag)
	if sub == nil {
		h.buf = append(h.buf, 1)
		h.field(top)
	} else {
		h.buf = append(h.buf, 2)
		h.field(top)
		h.field(sub)
	}
}

func (h *itemHasher) sum() itemHash { return sha256.Sum256(h.buf) }

func seqItem(h *itemHasher, top, sub []byte, seq uint64) itemHash {
	h.start('S', top, sub)
	h.buf = binary.AppendUvarint(h.buf, seq)
	return h.sum()
}

func kvItem(h *itemHasher, top, sub, k, v []byte) itemHash {
	h.start('K', top, sub)
	h.field(k)
	h.field(v)
	return h.sum()
}

func nestedItem(h *itemHasher, top, sub, name []byte) itemHash {
	h.start('B', top, sub)
	h.field(name)
	return h.sum()
}

// bucketAt returns the bucket top (sub nil) or top/sub, or nil.
func bucketAt(tx *bolt.Tx, top, sub []byte) *bolt.Bucket {
	b := tx.Bucket(top)
	if b != nil && sub != nil {
		b = b.Bucket(sub)
	}
	return b
}

// fullSum computes the content sum of tx from every item.
func fullSum(tx *bolt.Tx) sum256 {
	var s sum256
	var h itemHasher
	// addBucket adds the items of the bucket at (top, sub) and, at the top
	// level, of the buckets inside it.
	var addBucket func(b *bolt.Bucket, top, sub []byte)
	addBucket = func(b *bolt.Bucket, top, sub []byte) {
		s.add(seqItem(&h, top, sub, b.Sequence()))
		isMeta := sub == nil && bytes.Equal(top, bktMeta)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				if inner := b.Bucket(k); inner != nil {
					if sub == nil {
						addBucket(inner, top, k)
					} else {
						s.add(nestedItem(&h, top, sub, k))
					}
					continue
				}
				v = []byte{}
			}
			if isMeta && bytes.Equal(k, keySum) {
				continue
			}
			s.add(kvItem(&h, top, sub, k, v))
		}
	}
	c := tx.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if b := tx.Bucket(k); b != nil {
			addBucket(b, k, nil)
		}
	}
	return s
}

// itemKey names an item a write may change: the sequence number of the
// bucket at (top, sub) when seq is set, its key otherwise. sub is "" for a
// top-level bucket (bbolt has no bucket with an empty name).
type itemKey struct {
	top, sub, key string
	seq           bool
}

// itemBefore is an item as it was before the transaction: its hash, or
// that it did not exist.
type itemBefore struct {
	existed bool
	hash    itemHash
}

// txChanges collects what a write transaction changes, for the content
// sum. all asks for the sum to be computed from every item.
type txChanges struct {
	all   bool
	items map[itemKey]itemBefore
	h     itemHasher
}

func subOrNil(sub string) []byte {
	if sub == "" {
		return nil
	}
	return []byte(sub)
}

// touchKey records, during a write transaction and before the write, that
// key of the bucket at (top, sub) may change (be stored, replaced or
// deleted). The bucket need not exist yet.
func (ws *Workspace) touchKey(tx *bolt.Tx, top, sub, key []byte) {
	if ws == nil || ws.changes == nil || ws.changes.all {
		return
	}
	c := ws.changes
	k := itemKey{top: string(top), sub: string(sub), key: string(key)}
	if _, ok := c.items[k]; ok {
		return // the first touch saw the state before the transaction
	}
	var before itemBefore
	if b := bucketAt(tx, top, sub); b != nil {
		if v := b.Get(key); v != nil {
			before = itemBefore{true, kvItem(&c.h, top, sub, key, v)}
		}
	}
	c.items[k] = before
}

// touchBucket records, during a write transaction and before the change,
// that the bucket at (top, sub) may be created or its sequence number
// change.
func (ws *Workspace) touchBucket(tx *bolt.Tx, top, sub []byte) {
	if ws == nil || ws.changes == nil || ws.changes.all {
		return
	}
	c := ws.changes
	k := itemKey{top: string(top), sub: string(sub), seq: true}
	if _, ok := c.items[k]; ok {
		return
	}
	var before itemBefore
	if b := bucketAt(tx, top, sub); b != nil {
		before = itemBefore{true, seqItem(&c.h, top, sub, b.Sequence())}
	}
	c.items[k] = before
}

// markAll makes the commit compute the content sum from every item: for
// writes that change more than they announce (creating or upgrading the
// workspace).
func (ws *Workspace) markAll() {
	if ws != nil && ws.changes != nil {
		ws.changes.all = true
	}
}

// apply returns base (the sum before the transaction) with the items the
// transaction touched replaced by their current state in tx.
func (c *txChanges) apply(tx *bolt.Tx, base sum256) sum256 {
	s := base
	for k, before := range c.items {
		if before.existed {
			s.sub(before.hash)
		}
		top, sub := []byte(k.top), subOrNil(k.sub)
		b := bucketAt(tx, top, sub)
		switch {
		case b == nil:
		case k.seq:
			s.add(seqItem(&c.h, top, sub, b.Sequence()))
		default:
			if v := b.Get([]byte(k.key)); v != nil {
				s.add(kvItem(&c.h, top, sub, []byte(k.key), v))
			}
		}
	}
	return s
}

// storedFormat reads the format marker of tx, or 0 when there is none or
// it is unreadable.
func storedFormat(tx *bolt.Tx) int {
	b := tx.Bucket(bktMeta)
	if b == nil {
		return 0
	}
	n, err := strconv.Atoi(string(b.Get(keyFormat)))
	if err != nil {
		return 0
	}
	return n
}

// sumState is what verifySum found: the content sum of format 3 (valid
// when v3 is set; a workspace of an older format has another sum).
type sumState struct {
	sum sum256
	v3  bool
}

// verifySum compares the stored content sum with the content, by the rules
// of the format the workspace has: format 3 must have a sum of format 3;
// format 2 a SHA-256 over its units (contentSumV2), or none at all (format
// 1, or a format-2 workspace no commit has summed yet).
func verifySum(tx *bolt.Tx, path string) (sumState, error) {
	b := tx.Bucket(bktMeta)
	if b == nil {
		return sumState{}, nil
	}
	want := b.Get(keySum)
	mismatch := func(what string) error {
		return errcode.Errorf(errcode.DataLoss,
			"workspace metadata %s is damaged: %s (a record was altered or lost on disk); nothing was changed — run aml.CheckWorkspace (aksml workspace check) to see what can be recovered", path, what)
	}
	if storedFormat(tx) >= 3 {
		got := fullSum(tx)
		if want == nil {
			return sumState{}, mismatch("the checksum of its last commit is missing")
		}
		if !bytes.Equal(want, got.encode()) {
			return sumState{}, mismatch("its content does not match the checksum of its last commit")
		}
		return sumState{sum: got, v3: true}, nil
	}
	if want != nil && contentSumV2(tx) != string(want) {
		return sumState{}, mismatch("its content does not match the checksum of its last commit")
	}
	return sumState{}, nil
}

// writeSum stores the content sum of tx, by the rules of the format the
// transaction leaves (the current one unless the workspace is of an older
// format and the transaction did not upgrade it). base is the sum of the
// state the transaction started from and changes what it touched; the sum
// is computed from every item when changes asks for it or base is not of
// format 3. It returns the new sum (v3 unset for an older format).
func writeSum(tx *bolt.Tx, base sumState, changes *txChanges) (sumState, error) {
	existed := tx.Bucket(bktMeta) != nil
	b, err := tx.CreateBucketIfNotExists(bktMeta)
	if err != nil {
		return sumState{}, err
	}
	if storedFormat(tx) < 3 {
		return sumState{}, b.Put(keySum, []byte(contentSumV2(tx)))
	}
	incremental := base.v3 && existed && !changes.all
	var s sum256
	if incremental {
		s = changes.apply(tx, base.sum)
	} else {
		s = fullSum(tx)
	}
	if incremental && checkIncremental && tx.Size() <= 4<<20 {
		if full := fullSum(tx); full != s {
			panic(fmt.Sprintf("aml: incremental content sum %x differs from the full one %x: a write did not touch what it changed (touched: %v)",
				s.encode(), full.encode(), changes.items))
		}
	}
	return sumState{sum: s, v3: true}, b.Put(keySum, s.encode())
}

// checkIncremental, set by tests, compares every incremental content sum
// of a workspace of up to 4 MB with a full one.
var checkIncremental bool
