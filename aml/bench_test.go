package aml

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Open-per-operation costs: a read opens the database read-only under a
// shared lock, a write opens it read-write under the exclusive lock and
// fsyncs its commit. BenchmarkBoltKeptOpen is the floor: one bbolt handle
// kept open for the whole run, which a multi-process workspace cannot do.

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	ws, _ := newWS(b)
	if err := ws.Put(ctx, "service", "s", []byte("value")); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := ws.Get(ctx, "service", "s"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	ctx := context.Background()
	ws, _ := newWS(b)
	if err := ws.Put(ctx, "service", "s", []byte("value")); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ws.Get(ctx, "service", "s"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	ws, _ := newWS(b)
	i := 0
	for b.Loop() {
		i++
		if err := ws.Put(ctx, "service", fmt.Sprint(i%100), []byte("value")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRegisterModelSmall(b *testing.B) {
	ctx := context.Background()
	ws, _ := newWS(b)
	src := b.TempDir()
	var n atomic.Int64
	writeFiles(b, src, map[string]string{"m.pkl": "small model"})
	for b.Loop() {
		n.Add(1)
		if _, err := ws.RegisterModel(ctx, "m", filepath.Join(src, "m.pkl"), nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBoltKeptOpenGet(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "x.db"), 0o644, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error {
		bk, _ := tx.CreateBucket([]byte("b"))
		return bk.Put([]byte("k"), []byte("value"))
	})
	for b.Loop() {
		db.View(func(tx *bolt.Tx) error {
			_ = append([]byte{}, tx.Bucket([]byte("b")).Get([]byte("k"))...)
			return nil
		})
	}
}

func BenchmarkBoltKeptOpenPut(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "x.db"), 0o644, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err })
	i := 0
	for b.Loop() {
		i++
		db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("b")).Put([]byte(fmt.Sprint(i%100)), []byte("value"))
		})
	}
}

// Laying out a 64-file model for a replica: hard links against copies.
func BenchmarkMaterializeModels(b *testing.B) {
	ctx := context.Background()
	ws, _ := newWS(b)
	src := b.TempDir()
	files := map[string]string{}
	for i := range 64 {
		files[fmt.Sprintf("model/part%02d.bin", i)] = strings.Repeat(fmt.Sprint(i), 64<<10)
	}
	writeFiles(b, src, files)
	if _, err := ws.RegisterModel(ctx, "m", filepath.Join(src, "model"), nil); err != nil {
		b.Fatal(err)
	}
	for _, link := range []bool{true, false} {
		b.Run(fmt.Sprintf("link=%v", link), func(b *testing.B) {
			for b.Loop() {
				dir := b.TempDir()
				if _, err := ws.MaterializeModels(ctx, []string{"m:1"}, dir, &DownloadOptions{Link: link}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// largeWS builds a workspace of 1,000 model versions (25 names × 40) and
// 200 service records with model references, in a few transactions.
func largeWS(b *testing.B) *Workspace {
	b.Helper()
	ctx := context.Background()
	ws, _ := newWS(b)
	src := filepath.Join(b.TempDir(), "m.bin")
	writeFiles(b, filepath.Dir(src), map[string]string{"m.bin": "weights"})
	for i := range 25 {
		if _, err := ws.RegisterModel(ctx, fmt.Sprintf("model-%02d", i), src, &RegisterModelOptions{Tags: map[string]string{"team": "a"}}); err != nil {
			b.Fatal(err)
		}
	}
	// Further versions straight into the database: registering 1,000
	// files one by one would dominate the benchmark's setup.
	err := ws.update(ctx, func(tx *bolt.Tx) error {
		ws.markAll()
		return forEachModel(tx, func(m *Model) error {
			bk := tx.Bucket(bktModels).Bucket([]byte(m.Name))
			for range 39 {
				seq, _ := bk.NextSequence()
				c := m.clone()
				c.Version = int(seq)
				data, _ := json.Marshal(c)
				if err := bk.Put(versionKey(seq), data); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	err = ws.Txn(ctx, func(tx *Tx) error {
		for i := range 200 {
			id := fmt.Sprintf("model-%02d:%d", i%25, 1+i%40)
			rec := fmt.Sprintf(`{"name":"svc-%d","models":[%q],"primaryKey":"%s"}`, i, id, strings.Repeat("k", 32))
			if err := tx.Put("service", fmt.Sprintf("svc-%d", i), []byte(rec)); err != nil {
				return err
			}
			if err := tx.AddModelRefs(fmt.Sprintf("svc-%d", i), []string{id}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return ws
}

// The integrity checks on a workspace of 1,000 model versions and 200
// services: the content checksum (per commit), bbolt's Tx.Check (per Open),
// and Open as a whole.
func BenchmarkIntegrityLarge(b *testing.B) {
	ws := largeWS(b)
	ctx := context.Background()
	db, err := ws.openDB(true)
	if err != nil {
		b.Fatal(err)
	}
	info, _ := os.Stat(ws.dbPath)
	b.Logf("meta.db: %d bytes", info.Size())
	b.Run("contentSum", func(b *testing.B) {
		for b.Loop() {
			db.View(func(tx *bolt.Tx) error { fullSum(tx); return nil })
		}
	})
	b.Run("TxCheck", func(b *testing.B) {
		for b.Loop() {
			db.View(func(tx *bolt.Tx) error {
				if errs := checkTx(tx); len(errs) > 0 {
					b.Fatal(errs)
				}
				return nil
			})
		}
	})
	db.Close()
	b.Run("Open", func(b *testing.B) {
		for b.Loop() {
			w, err := Open(ctx, ws.Dir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			w.Close()
		}
	})
	b.Run("Put", func(b *testing.B) {
		for b.Loop() {
			if err := ws.Put(ctx, "service", "svc-0", []byte("v")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
