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
//     source directory under its own name in the app root
//     (/var/azureml-app/NAME, the working directory), as in Azure ML's
//     images; models are mounted at run time unless Spec.BakeModels asks to
//     copy them in.
//   - Cache looks the digest up in the workspace Store, then the global
//     one, builds only on a miss (through a Builder), and tags the result
//     aksml/env:<hex digest>. A Distributor makes an image available to a
//     target (a registry push, a load into kind's nodes).
//   - ContainerRunner and RunningContainer start containers from images,
//     the building block for container replicas (simulator.Options.Engine).
//
// This package holds no Docker client: the implementations over the Docker
// Engine API (Engine as Builder and ContainerRunner, EngineStore,
// RegistryStore, RegistryPusher) are in package image/docker, which only
// programs that build images or run containers link, as database/sql
// drivers are linked only by the programs that import them.
//
// Errors carry a code from package errcode.
package image
