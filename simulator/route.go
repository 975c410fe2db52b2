package simulator

import (
	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/frontend"
)

// publish installs the service's current replicas and weights in the
// front-end. Only ready replicas that are not leaving are routable, so a
// version without one gets no live traffic (its share falls to the default
// version). Caller holds c.mu.
func (c *Cluster) publish(s *service) {
	route := frontend.Route{Name: s.name, Auth: frontendAuth(s.spec.Auth)}
	for _, vn := range s.order {
		v := s.versions[vn]
		t := v.spec.Replica
		fv := frontend.Version{
			Name:                    vn,
			TrafficPercent:          v.spec.TrafficPercent,
			IsDefault:               v.spec.IsDefault,
			MirrorPercent:           v.spec.MirrorPercent,
			MaxConcurrentPerReplica: t.MaxConcurrentPerReplica,
			MaxQueueWait:            t.MaxQueueWait,
			ScoringTimeout:          t.ScoringTimeout,
		}
		for _, r := range v.replicas {
			if r.inst == nil || r.state != replicaReady {
				continue
			}
			fv.Replicas = append(fv.Replicas, frontend.Replica{ID: r.id, URL: r.inst.url, Ready: true})
		}
		route.Versions = append(route.Versions, fv)
	}
	if !s.spec.IsEndpoint && len(route.Versions) == 1 {
		route.Versions[0].IsDefault = true
		route.Versions[0].TrafficPercent = 100
	}
	if err := c.router.SetRoute(route); err != nil {
		// The portable layer validated the spec; a refusal here is a bug.
		c.opts.Logger.Error("front-end refused a route", "service", s.name, "err", err)
	}
}

func frontendAuth(a driver.Auth) frontend.Auth {
	switch a.Mode {
	case driver.AuthKey:
		return frontend.Auth{Mode: frontend.AuthKey, PrimaryKey: a.PrimaryKey, SecondaryKey: a.SecondaryKey}
	case driver.AuthToken:
		return frontend.Auth{Mode: frontend.AuthToken}
	}
	return frontend.Auth{Mode: frontend.AuthNone}
}

// issueToken asks the front-end's token issuer for a token scoped to name.
func (c *Cluster) issueToken(name string) (driver.Token, error) {
	t, err := c.router.Token(name)
	if err != nil {
		return driver.Token{}, err
	}
	return driver.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshAfter: t.RefreshAfter, ExpiresOn: t.ExpiryOn}, nil
}
