package docker

import (
	"context"
	"fmt"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/moby/moby/client"
)

// RegistryPusher pushes images to a registry through the engine, as Azure ML
// pushes to the workspace's container registry.
type RegistryPusher struct {
	Engine *Engine
	// Registry is the registry host and optional path
	// ("myacr.azurecr.io", "127.0.0.1:5000/team").
	Registry string
	// RegistryAuth is the engine's base64 X-Registry-Auth value; empty for
	// an anonymous registry.
	RegistryAuth string
	// Log receives the push progress line by line; nil drops it.
	Log func(line string)
}

// Distribute tags ref as Registry/<ref> and pushes it.
func (p *RegistryPusher) Distribute(ctx context.Context, ref string) (string, error) {
	if strings.TrimSpace(p.Registry) == "" {
		return "", errcode.New(errcode.InvalidArgument, "registry is empty; name the registry to push to")
	}
	target := strings.TrimSuffix(p.Registry, "/") + "/" + ref
	if err := p.Engine.TagImage(ctx, ref, target); err != nil {
		return "", err
	}
	if err := p.Engine.push(ctx, target, p.RegistryAuth, p.Log); err != nil {
		return "", err
	}
	return target, nil
}

// push pushes ref and waits for the end of the push stream.
func (e *Engine) push(ctx context.Context, ref, auth string, logf func(string)) error {
	if auth == "" {
		auth = "e30=" // base64 of "{}": anonymous
	}
	resp, err := e.cli.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		return registryError(e, err, "pushing %s", ref)
	}
	defer resp.Close()
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return registryError(e, err, "pushing %s", ref)
		}
		if m.Error != nil {
			return registryError(e, fmt.Errorf("%s", m.Error.Message), "pushing %s", ref)
		}
		if logf != nil && m.Status != "" {
			if m.ID != "" {
				logf(m.ID + ": " + m.Status)
			} else {
				logf(m.Status)
			}
		}
	}
	return nil
}
