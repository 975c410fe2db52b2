// Package image turns an environment and an entry script into a scoring
// image, and reuses images by content, as Azure ML does.
//
// The pieces, in the order a deployment uses them:
//
//   - Spec describes an image with plain fields (base image or base
//     Dockerfile, extra Docker steps, conda YAML or a user-managed
//     interpreter, pip packages, environment variables, entry script,
//     digests of the source directory, scoring binary and baked models).
//     Spec.Digest hashes a canonical form (sha256, go-digest): equal content
//     gives an equal digest whatever the environment's name and version,
//     any change that alters the image gives another.
//   - PackageSource packages a source directory into a deterministic tar
//     (sorted entries, fixed times and owners, normalised modes), honouring
//     .amlignore, else .gitignore, in every directory with git's semantics
//     (go-git's matcher); its digest is the same on every machine.
//   - Spec.Dockerfile and BuildContext write the Dockerfile and the build
//     context: the base, the conda environment (or none when user-managed),
//     pip packages, the static aksml-score binary, the entry script and the
//     source under /var/azureml-app; models are mounted at run time unless
//     Spec.BakeModels asks to copy them in.
//   - Cache looks the digest up in the workspace store, then the global one
//     (EngineStore: the local engine's images; RegistryStore: a registry
//     through the engine), builds only on a miss, and tags the result
//     aksml/env:<hex digest>. A Distributor pushes an image to a registry
//     (RegistryPusher) or loads it into the nodes of a kind cluster
//     (kube/kind's Cluster).
//   - Engine talks to the Docker Engine API (github.com/moby/moby/client,
//     which negotiates down to API 1.41 for Docker 20.10). Its Build streams
//     the build log and turns a failure into a *BuildError naming the
//     failing step with the last log lines (errors.Is
//     ErrEnvironmentBuildFailed). Unless BuildOptions.AllowPull is set, a
//     base image missing from the engine fails at once
//     (errcode.FailedPrecondition) instead of reaching for a registry. With
//     no engine reachable, calls fail with errcode.Unavailable.
//   - RunContainer starts a container from an image with its port published
//     on 127.0.0.1 only, and returns its address, logs, state, Stop and
//     Remove: the building block for container replicas.
//
// Errors carry a code from package errcode.
package image
