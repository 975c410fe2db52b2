package kube

import (
	"bufio"
	"context"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/aksml/aksml/frontend"
)

// ServiceLogs returns up to tail lines (0 means all) of the service's pod
// logs, pods oldest first, each line prefixed with "POD: ". Without init it
// is the scoring container's current log, or its previous run's when the
// current one has not started (a crashing container). With init it is the
// output of the pod's init containers and, for a container that restarted,
// its previous run, where a failing init() shows. Pods whose containers
// have not started contribute nothing. NotFound if there is no such
// service.
func (c *Cluster) ServiceLogs(ctx context.Context, name string, tail int, init bool) ([]string, error) {
	root, err := c.find(ctx, name)
	if err != nil {
		return nil, err
	}
	ns := root.Namespace
	sel := labels.Set{LabelManagedBy: ManagedBy, LabelService: name}.String()
	pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, apiError(err, "service %q: list pods", name)
	}
	items := pods.Items
	sort.Slice(items, func(i, j int) bool {
		if !items[i].CreationTimestamp.Equal(&items[j].CreationTimestamp) {
			return items[i].CreationTimestamp.Before(&items[j].CreationTimestamp)
		}
		return items[i].Name < items[j].Name
	})
	var out []string
	for i := range items {
		p := &items[i]
		type src struct {
			container string
			previous  bool
		}
		var srcs []src
		if init {
			for _, cs := range p.Status.InitContainerStatuses {
				srcs = append(srcs, src{cs.Name, false})
			}
			for _, cs := range p.Status.ContainerStatuses {
				if cs.RestartCount > 0 {
					srcs = append(srcs, src{cs.Name, true})
				}
			}
		} else {
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name != ContainerName {
					continue
				}
				switch {
				case cs.State.Running != nil || cs.State.Terminated != nil:
					srcs = append(srcs, src{cs.Name, false})
				case cs.RestartCount > 0:
					srcs = append(srcs, src{cs.Name, true})
				}
			}
		}
		for _, s := range srcs {
			lines, err := c.podLog(ctx, p, s.container, s.previous, tail)
			if err != nil {
				return nil, err
			}
			for _, l := range lines {
				out = append(out, p.Name+": "+l)
			}
		}
	}
	if tail > 0 && len(out) > tail {
		out = out[len(out)-tail:]
	}
	return out, nil
}

func (c *Cluster) podLog(ctx context.Context, p *corev1.Pod, container string, previous bool, tail int) ([]string, error) {
	opts := &corev1.PodLogOptions{Container: container, Previous: previous}
	if tail > 0 {
		t := int64(tail)
		opts.TailLines = &t
	}
	rc, err := c.client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, opts).Stream(ctx)
	if err != nil {
		// A container that is gone or not started yet has no log to give.
		if apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) {
			return nil, nil
		}
		return nil, apiError(err, "logs of pod %s/%s", p.Namespace, p.Name)
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, apiError(err, "logs of pod %s/%s", p.Namespace, p.Name)
	}
	return lines, nil
}

// TokenSecret is the Secret (in the front-end namespace) holding the key
// that signs service tokens; the front-end verifies with it.
const TokenSecret = "aksml-token-signing"

// tokenIssuer returns an issuer signing with the cluster's token key,
// creating the key on first use.
func (c *Cluster) tokenIssuer(ctx context.Context) (*frontend.TokenIssuer, error) {
	key, err := TokenKey(ctx, c.client, c.opts.FrontEndNamespace)
	if err != nil {
		return nil, err
	}
	return frontend.NewTokenIssuer(key, &frontend.TokenOptions{Clock: c.opts.Clock, TTL: c.opts.TokenTTL}), nil
}
