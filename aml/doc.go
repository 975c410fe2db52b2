// Package aml is the workspace of aksml: the place models, environments and
// deployment records live, and the configuration types that say what runs
// in a scoring container. It mirrors the Azure ML SDK v1 surface
// (azureml.core.Workspace, Model.register, Model(ws, name), Model.list,
// Environment, InferenceConfig) with the Azure service replaced by a
// directory on disk.
//
// # Workspace
//
// Open opens (or creates) a workspace on a directory. Metadata lives in an
// embedded bbolt database; model files live in a content-addressed blob
// store keyed by sha256 digest, so equal content is stored once. A
// Workspace is safe for concurrent use by goroutines and by several
// processes on the same directory: every operation takes a file lock
// (shared to read, exclusive to write) for just one transaction. A
// registration copies and fsyncs its files before taking the lock and
// commits them with its metadata in one step, so a process killed at any
// point leaves either the whole new version or nothing; GC removes what a
// killed process may leave behind. CreateWithModelRefs and
// DeleteWithModelRefs write a deployment's record and its model references
// in one transaction.
//
// # Integrity
//
// The workspace never serves damaged metadata and never crashes on it:
// meta.db's meta pages and size are checked before every open, a SHA-256
// over its whole content is stored by every commit and verified on Open and
// before writes, bbolt's Tx.Check runs on Open, and a panic or memory fault
// inside bbolt becomes an error. Damage, and a meta.db that is missing or
// empty beside stored model files, are errcode.DataLoss errors; nothing is
// changed. GC deletes only blobs it can prove unreferenced and refuses to
// run when the metadata looks reset. The directory is private (0700,
// meta.db 0600: it holds service keys). Deployments give replicas
// read-only copies of the model files, never links into the blob store.
// CheckWorkspace examines a workspace that does not open and reports what
// can be recovered. docs/workspace.md in the repository describes all this.
//
// # Models
//
// RegisterModel registers a file or a directory under a name; versions
// count from 1 per name. Model returns the latest version, ModelVersion and
// ModelByID an exact one, ListModels filters by name, tag, property and
// framework, DownloadModel writes the files back out (copying or
// hard-linking), UpdateModelTags changes tags, and DeleteModel deletes a
// version unless a deployment references it (AddModelRefs).
//
// # Records for other packages
//
// Get, Put, Create, Delete, List and Update store opaque values by (kind,
// name) for compute targets, services and endpoints; Txn groups several
// changes, including model references, into one atomic transaction.
//
// # Configuration
//
// Environment (Python dependencies from a conda file or user-managed, a
// Docker base image or Dockerfile, environment variables) is registered
// with RegisterEnvironment and read back with Environment. InferenceConfig
// names an entry script (or a Go scoring.Handler), a source directory and
// an environment; it reads and writes inferenceconfig.json exactly as `az
// ml model deploy --ic` does (LoadInferenceConfig, SaveInferenceConfig).
// Validate methods report every broken rule at once, each message naming the
// field, the value and the rule. All errors carry an errcode code.
package aml
