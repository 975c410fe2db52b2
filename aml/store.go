package aml

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"

	"github.com/aksml/aksml/errcode"
	bolt "go.etcd.io/bbolt"
)

// The generic record store.
//
// Other packages keep their objects (compute targets, services, endpoints)
// in the workspace as opaque values addressed by (kind, name): the kind
// groups records ("compute", "service"), the name is unique within a kind.
// Values are bytes, typically JSON of the caller's own type; the workspace
// does not interpret them. Every call is one transaction, atomic and
// durable, and serialised with every other process using the workspace.
// Txn groups several changes, across kinds and model references, into one
// transaction.

// KindPattern is the rule for record kinds: a lower-case letter, then up
// to 63 lower-case letters, digits, '.', '_' or '-'.
const KindPattern = `^[a-z][a-z0-9._-]{0,63}$`

// MaxRecordNameLen is the longest record name accepted, in bytes.
const MaxRecordNameLen = 1024

var kindRE = regexp.MustCompile(KindPattern)

// Record is one stored value.
type Record struct {
	// Name is unique within the record's kind.
	Name string
	// Value is the stored bytes, a copy the caller owns.
	Value []byte
}

func checkKey(kind, name string) error {
	var errs []error
	if !kindRE.MatchString(kind) {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument, "record kind %q does not match %s", kind, KindPattern))
	}
	if name == "" || len(name) > MaxRecordNameLen {
		errs = append(errs, errcode.Errorf(errcode.InvalidArgument,
			"record name %q must be 1 to %d bytes long", name, MaxRecordNameLen))
	}
	return errors.Join(errs...)
}

// Tx is one transaction over the workspace's records and model references,
// given to the function passed to Workspace.Txn or Workspace.View. It is
// valid only during that call. The function must not call back into the
// Workspace (that would deadlock) and should be quick: it runs while every
// other writer, in every process, waits.
type Tx struct {
	tx *bolt.Tx
	ws *Workspace // told what changes, for the content sum; nil in View
}

func (t *Tx) writable() error {
	if !t.tx.Writable() {
		return errcode.New(errcode.FailedPrecondition, "write in a read-only transaction (use Txn, not View)")
	}
	return nil
}

// Get returns a copy of the value of (kind, name), or NotFound.
func (t *Tx) Get(kind, name string) ([]byte, error) {
	if err := checkKey(kind, name); err != nil {
		return nil, err
	}
	v, ok := t.get(kind, name)
	if !ok {
		return nil, errcode.Errorf(errcode.NotFound, "%s %q not found", kind, name)
	}
	return v, nil
}

func (t *Tx) get(kind, name string) ([]byte, bool) {
	b := t.tx.Bucket(bktRecords).Bucket([]byte(kind))
	if b == nil {
		return nil, false
	}
	k, v := b.Cursor().Seek([]byte(name))
	if k == nil || !bytes.Equal(k, []byte(name)) || v == nil {
		return nil, false
	}
	return append([]byte{}, v...), true
}

// Put stores value under (kind, name), replacing any previous value.
func (t *Tx) Put(kind, name string, value []byte) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	if err := t.writable(); err != nil {
		return err
	}
	t.ws.touchBucket(t.tx, bktRecords, []byte(kind))
	t.ws.touchKey(t.tx, bktRecords, []byte(kind), []byte(name))
	b, err := t.tx.Bucket(bktRecords).CreateBucketIfNotExists([]byte(kind))
	if err != nil {
		return ioErr("create record kind", err)
	}
	if value == nil {
		value = []byte{}
	}
	if err := b.Put([]byte(name), value); err != nil {
		return errcode.Errorf(errcode.InvalidArgument, "store %s %q: %v", kind, name, err)
	}
	return nil
}

// Create stores value under (kind, name), failing with AlreadyExists when a
// value is already stored there.
func (t *Tx) Create(kind, name string, value []byte) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	if _, ok := t.get(kind, name); ok {
		return errcode.Errorf(errcode.AlreadyExists, "%s %q already exists", kind, name)
	}
	return t.Put(kind, name, value)
}

// Delete removes (kind, name), failing with NotFound when nothing is stored
// there.
func (t *Tx) Delete(kind, name string) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	if err := t.writable(); err != nil {
		return err
	}
	if _, ok := t.get(kind, name); !ok {
		return errcode.Errorf(errcode.NotFound, "%s %q not found", kind, name)
	}
	t.ws.touchKey(t.tx, bktRecords, []byte(kind), []byte(name))
	if err := t.tx.Bucket(bktRecords).Bucket([]byte(kind)).Delete([]byte(name)); err != nil {
		return ioErr("delete record", err)
	}
	return nil
}

// List returns every record of kind, sorted by name (byte order). An
// unknown kind has no records.
func (t *Tx) List(kind string) ([]Record, error) {
	if !kindRE.MatchString(kind) {
		return nil, errcode.Errorf(errcode.InvalidArgument, "record kind %q does not match %s", kind, KindPattern)
	}
	b := t.tx.Bucket(bktRecords).Bucket([]byte(kind))
	if b == nil {
		return nil, nil
	}
	var out []Record
	err := b.ForEach(func(k, v []byte) error {
		if v != nil {
			out = append(out, Record{Name: string(k), Value: append([]byte{}, v...)})
		}
		return nil
	})
	return out, err
}

// Update replaces the value of (kind, name) with what fn returns; see
// Workspace.Update.
func (t *Tx) Update(kind, name string, fn func(old []byte, exists bool) ([]byte, error)) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	if err := t.writable(); err != nil {
		return err
	}
	old, ok := t.get(kind, name)
	nv, err := fn(old, ok)
	if err != nil {
		return err
	}
	switch {
	case nv != nil:
		return t.Put(kind, name, nv)
	case ok:
		return t.Delete(kind, name)
	}
	return nil
}

// Model returns a model version (0 = latest), or NotFound.
func (t *Tx) Model(name string, version int) (*Model, error) {
	if err := validateModelName(name); err != nil {
		return nil, err
	}
	return getModel(t.tx, name, version)
}

// AddModelRefs records that user (a display name such as "service
// my-svc") uses the model versions ids ("name:version"), in addition to
// those it already uses. While a reference exists, DeleteModel refuses to
// delete the version. Every id must name an existing version (NotFound
// otherwise, nothing recorded).
func (t *Tx) AddModelRefs(user string, ids []string) error {
	if user == "" {
		return errcode.New(errcode.InvalidArgument, "model reference user is empty")
	}
	if err := t.writable(); err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		name, v, err := ParseModelID(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := getModel(t.tx, name, v); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	b := t.tx.Bucket(bktModelRefs)
	t.ws.touchKey(t.tx, bktModelRefs, nil, []byte(user))
	cur, err := decodeRefs(b.Get([]byte(user)))
	if err != nil {
		return err
	}
	cur = append(cur, ids...)
	slices.Sort(cur)
	cur = slices.Compact(cur)
	data, _ := json.Marshal(cur)
	if err := b.Put([]byte(user), data); err != nil {
		return errcode.Errorf(errcode.InvalidArgument, "model reference user %q: %v", user, err)
	}
	return nil
}

// RemoveModelRefs drops every model reference of user. Removing the
// references of a user that has none is not an error.
func (t *Tx) RemoveModelRefs(user string) error {
	if user == "" {
		return errcode.New(errcode.InvalidArgument, "model reference user is empty")
	}
	if err := t.writable(); err != nil {
		return err
	}
	t.ws.touchKey(t.tx, bktModelRefs, nil, []byte(user))
	if err := t.tx.Bucket(bktModelRefs).Delete([]byte(user)); err != nil {
		return ioErr("remove model references", err)
	}
	return nil
}

// ModelRefs returns the users referencing model version id, sorted.
func (t *Tx) ModelRefs(id string) ([]string, error) {
	if _, _, err := ParseModelID(id); err != nil {
		return nil, err
	}
	return refUsers(t.tx, id)
}

func decodeRefs(data []byte) ([]string, error) {
	if data == nil {
		return nil, nil
	}
	var ids []string
	if err := json.Unmarshal(data, &ids); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "corrupt model reference record: %v", err)
	}
	return ids, nil
}

func refUsers(tx *bolt.Tx, id string) ([]string, error) {
	var users []string
	err := tx.Bucket(bktModelRefs).ForEach(func(k, v []byte) error {
		ids, err := decodeRefs(v)
		if err != nil {
			return err
		}
		if slices.Contains(ids, id) {
			users = append(users, string(k))
		}
		return nil
	})
	return users, err
}

// Txn runs fn in one read-write transaction: every change fn makes through
// tx is committed atomically when fn returns nil, and none is when it
// returns an error (which Txn returns as is). fn must not call the
// Workspace (it would deadlock) and should return quickly.
func (ws *Workspace) Txn(ctx context.Context, fn func(tx *Tx) error) error {
	return ws.update(ctx, func(btx *bolt.Tx) error { return fn(&Tx{tx: btx, ws: ws}) })
}

// View runs fn in a read-only transaction that sees one consistent state.
// Writes through tx fail with FailedPrecondition.
func (ws *Workspace) View(ctx context.Context, fn func(tx *Tx) error) error {
	return ws.view(ctx, func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// Get returns the value stored under (kind, name), or NotFound.
func (ws *Workspace) Get(ctx context.Context, kind, name string) ([]byte, error) {
	var v []byte
	err := ws.View(ctx, func(tx *Tx) error {
		var err error
		v, err = tx.Get(kind, name)
		return err
	})
	return v, err
}

// Put stores value under (kind, name), replacing any previous value.
func (ws *Workspace) Put(ctx context.Context, kind, name string, value []byte) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	return ws.Txn(ctx, func(tx *Tx) error { return tx.Put(kind, name, value) })
}

// Create stores value under (kind, name), failing with AlreadyExists when
// something is stored there already.
func (ws *Workspace) Create(ctx context.Context, kind, name string, value []byte) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	return ws.Txn(ctx, func(tx *Tx) error { return tx.Create(kind, name, value) })
}

// Delete removes (kind, name), failing with NotFound when nothing is
// stored there.
func (ws *Workspace) Delete(ctx context.Context, kind, name string) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	return ws.Txn(ctx, func(tx *Tx) error { return tx.Delete(kind, name) })
}

// List returns every record of kind, sorted by name.
func (ws *Workspace) List(ctx context.Context, kind string) ([]Record, error) {
	var out []Record
	err := ws.View(ctx, func(tx *Tx) error {
		var err error
		out, err = tx.List(kind)
		return err
	})
	return out, err
}

// Update is an atomic read-modify-write of (kind, name). fn receives a copy
// of the current value and whether one exists, and returns the new value:
//
//   - a non-nil slice is stored (an empty non-nil slice stores an empty value);
//   - nil deletes the record (nothing happens if it did not exist);
//   - an error aborts: nothing changes and Update returns that error as is,
//     so fn can return errcode errors such as AlreadyExists or Conflict.
//
// No other writer, in this or another process, runs between the read and
// the write. fn runs under the workspace lock: it must not call the
// Workspace and should be quick. It runs exactly once per Update call.
func (ws *Workspace) Update(ctx context.Context, kind, name string, fn func(old []byte, exists bool) ([]byte, error)) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	return ws.Txn(ctx, func(tx *Tx) error { return tx.Update(kind, name, fn) })
}

// AddModelRefs records that user uses the model versions ids; see
// Tx.AddModelRefs.
func (ws *Workspace) AddModelRefs(ctx context.Context, user string, ids []string) error {
	return ws.Txn(ctx, func(tx *Tx) error { return tx.AddModelRefs(user, ids) })
}

// RemoveModelRefs drops every model reference of user.
func (ws *Workspace) RemoveModelRefs(ctx context.Context, user string) error {
	return ws.Txn(ctx, func(tx *Tx) error { return tx.RemoveModelRefs(user) })
}

// ModelRefs returns the users referencing model version id, sorted.
func (ws *Workspace) ModelRefs(ctx context.Context, id string) ([]string, error) {
	var users []string
	err := ws.View(ctx, func(tx *Tx) error {
		var err error
		users, err = tx.ModelRefs(id)
		return err
	})
	return users, err
}

// CreateWithModelRefs stores value under (kind, name), failing with
// AlreadyExists when something is stored there, and records that user uses
// the model versions ids (see Tx.AddModelRefs) — in one transaction, so a
// process killed at any point leaves both or neither. Deployments record
// themselves with it: a record without its references would let DeleteModel
// remove a model the deployment still serves.
func (ws *Workspace) CreateWithModelRefs(ctx context.Context, kind, name string, value []byte, user string, ids []string) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	return ws.Txn(ctx, func(tx *Tx) error {
		if err := tx.Create(kind, name, value); err != nil {
			return err
		}
		return tx.AddModelRefs(user, ids)
	})
}

// DeleteWithModelRefs removes (kind, name), if it exists, and every model
// reference of user, in one transaction.
func (ws *Workspace) DeleteWithModelRefs(ctx context.Context, kind, name, user string) error {
	if err := checkKey(kind, name); err != nil {
		return err
	}
	return ws.Txn(ctx, func(tx *Tx) error {
		if err := tx.Delete(kind, name); err != nil && !errors.Is(err, errcode.NotFound) {
			return err
		}
		return tx.RemoveModelRefs(user)
	})
}
