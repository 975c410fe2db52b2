// Package docker implements package image's interfaces over the Docker
// Engine API (github.com/moby/moby/client): the image builder, the image
// stores and the container runner. It is the heavy half of image building,
// linked only by programs that build images or run replicas as containers.
//
//   - Engine talks to the engine, negotiating the API version down to 1.41
//     for Docker 20.10. It is an image.Builder: Build streams the build log
//     and turns a failure into an *image.BuildError naming the failing step
//     with the last log lines (errors.Is image.ErrEnvironmentBuildFailed).
//     Unless BuildOptions.AllowPull is set, a base image missing from the
//     engine fails at once (errcode.FailedPrecondition) instead of reaching
//     for a registry. With no engine reachable, calls fail with
//     errcode.Unavailable.
//   - Engine is an image.ContainerRunner too: RunContainer starts a container
//     with its port published on 127.0.0.1 only and returns its address,
//     logs, state, Stop and Remove (give it to simulator.Options.Engine).
//   - EngineStore (the engine's own image store) and RegistryStore (a
//     registry through the engine) are image.Stores for image.Cache;
//     StoreFor picks one from a configuration string.
//   - RegistryPusher is an image.Distributor pushing to a registry.
//
// Errors carry a code from package errcode.
package docker
