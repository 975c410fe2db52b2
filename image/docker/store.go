package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
)

// EngineStore is a Store in the local engine's image store: the image for d
// is tagged Repository:<hex of d>.
type EngineStore struct {
	Engine *Engine
	// Repository is the repository images are tagged in; empty means
	// Repository ("aksml/env").
	Repository string
}

func (s *EngineStore) repo() string {
	if s.Repository == "" {
		return image.Repository
	}
	return s.Repository
}

// String names the store.
func (s *EngineStore) String() string { return "engine image store " + s.repo() }

// Lookup inspects Repository:<hex>. An image whose digest label disagrees
// (a foreign image under that tag) counts as absent.
func (s *EngineStore) Lookup(ctx context.Context, d digest.Digest) (string, error) {
	ref := image.RefFor(s.repo(), d)
	info, err := s.Engine.inspectImage(ctx, ref)
	if err != nil {
		return "", err
	}
	if l, ok := info.Labels[image.LabelDigest]; ok && l != d.String() {
		return "", errcode.Errorf(errcode.NotFound, "image %s has digest label %s, not %s", ref, l, d)
	}
	return ref, nil
}

// Record tags local as Repository:<hex>.
func (s *EngineStore) Record(ctx context.Context, d digest.Digest, local string) (string, error) {
	ref := image.RefFor(s.repo(), d)
	if err := s.Engine.TagImage(ctx, local, ref); err != nil {
		return "", err
	}
	return ref, nil
}

// RegistryStore is a Store in a container registry, reached through the
// engine: Lookup asks the registry for the manifest of
// Repository:<hex>, Record tags the local image and pushes it. An
// unreachable registry is errcode.Unavailable.
type RegistryStore struct {
	Engine *Engine
	// Repository is the full repository ("myacr.azurecr.io/aksml/env").
	Repository string
	// RegistryAuth is the engine's base64 X-Registry-Auth value; empty for
	// an anonymous registry.
	RegistryAuth string
}

// String names the store.
func (s *RegistryStore) String() string { return "registry " + s.Repository }

// Lookup asks the registry whether Repository:<hex> exists.
func (s *RegistryStore) Lookup(ctx context.Context, d digest.Digest) (string, error) {
	ref := image.RefFor(s.Repository, d)
	_, err := s.Engine.cli.DistributionInspect(ctx, ref, client.DistributionInspectOptions{EncodedRegistryAuth: s.RegistryAuth})
	if err != nil {
		return "", registryError(s.Engine, err, "looking up %s", ref)
	}
	return ref, nil
}

// Record tags local as Repository:<hex> and pushes it.
func (s *RegistryStore) Record(ctx context.Context, d digest.Digest, local string) (string, error) {
	ref := image.RefFor(s.Repository, d)
	if err := s.Engine.TagImage(ctx, local, ref); err != nil {
		return "", err
	}
	if err := s.Engine.push(ctx, ref, s.RegistryAuth, nil); err != nil {
		return "", err
	}
	return ref, nil
}

// StoreFor returns the Store a configuration string names:
//
//	""                          the engine's image store, repository aksml/env
//	"engine:REPOSITORY"         the engine's image store, that repository
//	"registry:HOST/REPOSITORY"  a registry reached through the engine
//
// Anything else is errcode.InvalidArgument.
func StoreFor(e *Engine, location string) (image.Store, error) {
	kind, repo, _ := strings.Cut(strings.TrimSpace(location), ":")
	if location == "" {
		return &EngineStore{Engine: e}, nil
	}
	if named, err := reference.ParseNormalizedNamed(repo); err != nil || !reference.IsNameOnly(named) || repo == "scratch" {
		return nil, errcode.Errorf(errcode.InvalidArgument, "image store %q: repository %q is not valid", location, repo)
	}
	switch kind {
	case "engine":
		return &EngineStore{Engine: e, Repository: repo}, nil
	case "registry":
		if !strings.Contains(repo, "/") {
			return nil, errcode.Errorf(errcode.InvalidArgument, "image store %q: a registry store needs HOST/REPOSITORY", location)
		}
		return &RegistryStore{Engine: e, Repository: repo}, nil
	}
	return nil, errcode.Errorf(errcode.InvalidArgument, "image store %q: want \"engine:REPOSITORY\" or \"registry:HOST/REPOSITORY\"", location)
}

// registryError gives an error from the engine talking to a registry its
// code: the daemon reports an unreachable registry as a server error.
func registryError(e *Engine, err error, format string, args ...any) error {
	wrapped := e.wrap(err, format, args...)
	if errcode.Of(wrapped) != errcode.Internal {
		return wrapped
	}
	msg := strings.ToLower(err.Error())
	switch {
	case containsAny(msg, "connection refused", "no such host", "dial tcp", "i/o timeout", "tls: ", "server gave http response", "network is unreachable"):
		return errcode.Errorf(errcode.Unavailable, "%s: registry not reachable: %s", fmt.Sprintf(format, args...), daemonMessage(err))
	case containsAny(msg, "unauthorized", "denied", "authentication required"):
		return errcode.Errorf(errcode.Unauthenticated, "%s: %s", fmt.Sprintf(format, args...), daemonMessage(err))
	case containsAny(msg, "manifest unknown", "not found"):
		return errcode.Errorf(errcode.NotFound, "%s: %s", fmt.Sprintf(format, args...), daemonMessage(err))
	}
	return wrapped
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
