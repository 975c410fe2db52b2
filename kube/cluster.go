package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
)

// AnnotationVersions on a service's Secret lists its version names in spec
// order (JSON array).
const AnnotationVersions = "aksml.io/versions"

// Cluster is an attached Kubernetes cluster: a driver.Cluster whose
// services are Kubernetes objects. Each service NAME in namespace NS is
//
//   - the Secret aksml-NAME: the keys (key auth) and the service's settings
//     in annotations; it owns every other object of the service, so deleting
//     it deletes them all;
//   - per version, a Deployment and a ClusterIP Service named NAME (web
//     service) or NAME-VERSION (endpoint version), labelled
//     aksml.io/service=NAME, aksml.io/version=VERSION, model.aksml.io/MODEL=N,
//     with the route settings and model digests in annotations.
//
// Every object is written by server-side apply with one field manager, so
// applying an unchanged spec changes nothing (no new ReplicaSet, no
// restart).
type Cluster struct {
	name   string
	p      *Provider
	opts   Options
	client kubernetes.Interface
	config *rest.Config
	uid    string

	mu         sync.Mutex
	namespaces map[string]string // service → namespace, as last seen
	probeOff   probeOff          // a front end Status could not reach (tls.go)

	watch watcher // informers while Watch has subscribers
}

var _ driver.Cluster = (*Cluster)(nil)

// Name is the compute target name the cluster was attached under.
func (c *Cluster) Name() string { return c.name }

// Client is the cluster's client-go clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Status reports Succeeded (an attached cluster exists) with the shape of
// its nodes: their count, and the size, vCPUs, memory and GPUs of the first
// node (instance-type label, allocatable), and the front end's addresses
// and the certificate it serves (SetTLS). An unreachable cluster is
// Unavailable.
func (c *Cluster) Status(ctx context.Context) (driver.ClusterStatus, error) {
	nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return driver.ClusterStatus{}, apiError(err, "compute target %q: list nodes", c.name)
	}
	st := driver.ClusterStatus{State: driver.StateSucceeded}
	st.Shape.AgentCount = len(nodes.Items)
	items := nodes.Items
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	if len(items) > 0 {
		n := items[0]
		st.Shape.VMSize = n.Labels["node.kubernetes.io/instance-type"]
		st.Shape.VCPUs = int(n.Status.Allocatable.Cpu().Value())
		st.Shape.MemoryGB = float64(n.Status.Allocatable.Memory().Value()) / (1 << 30)
		if q, ok := n.Status.Allocatable[ResourceGPU]; ok {
			st.Shape.GPUs = int(q.Value())
		}
		st.Shape.Location = n.Labels["topology.kubernetes.io/region"]
	}
	c.tlsStatus(ctx, &st)
	return st, nil
}

// scoringBase is the front-end's address: Options.ScoringBaseURL, else the
// front-end Service's load balancer ingress or cluster IP, else "".
func (c *Cluster) scoringBase(ctx context.Context) string {
	if c.opts.ScoringBaseURL != "" {
		return c.opts.ScoringBaseURL
	}
	svc, err := c.client.CoreV1().Services(c.opts.FrontEndNamespace).Get(ctx, c.opts.FrontEndService, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	host, port := svc.Spec.ClusterIP, "80"
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP == "" && in.Hostname == "" {
			continue
		}
		host = in.IP
		if host == "" {
			host = in.Hostname
		}
		// A load balancer that reports its port (a local one on a free
		// port) is reached there rather than on the Service's port 80.
		if len(in.Ports) > 0 && in.Ports[0].Port > 0 {
			port = strconv.Itoa(int(in.Ports[0].Port))
		}
		break
	}
	if host == "" || host == corev1.ClusterIPNone {
		return ""
	}
	return "http://" + net.JoinHostPort(host, port)
}

// SecretName is the name of service's Secret, aksml-NAME: the root object
// that holds its keys and settings and owns every other object of it.
func SecretName(service string) string { return "aksml-" + service }

// Detach forgets the cluster; the services on it stay. With
// Options.InstallFrontEnd it removes the in-cluster front-end first.
func (c *Cluster) Detach(ctx context.Context) error {
	if c.opts.InstallFrontEnd {
		if err := c.UninstallFrontEnd(ctx); err != nil {
			return err
		}
	}
	c.p.forget(c)
	return nil
}

// Delete is Unimplemented: an attached cluster is not the driver's to
// delete (detach it instead).
func (c *Cluster) Delete(ctx context.Context) error {
	return errcode.Errorf(errcode.Unimplemented, "compute target %q is an attached cluster: detach it; deleting the cluster itself is not supported", c.name)
}

func (c *Cluster) namespaceFor(spec *driver.ServiceSpec) string {
	if spec.Namespace != "" {
		return spec.Namespace
	}
	return c.opts.Namespace
}

// find returns the namespace and Secret of service name; NotFound if there
// is none.
func (c *Cluster) find(ctx context.Context, name string) (*corev1.Secret, error) {
	c.mu.Lock()
	ns, ok := c.namespaces[name]
	c.mu.Unlock()
	if ok {
		s, err := c.client.CoreV1().Secrets(ns).Get(ctx, SecretName(name), metav1.GetOptions{})
		if err == nil && s.Labels[LabelService] == name && s.DeletionTimestamp == nil {
			return s, nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, apiError(err, "service %q", name)
		}
	}
	sel := labels.Set{LabelManagedBy: ManagedBy, LabelService: name}.String()
	list, err := c.client.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: sel, FieldSelector: "metadata.name=" + SecretName(name)})
	if err != nil {
		return nil, apiError(err, "service %q", name)
	}
	for i := range list.Items {
		s := &list.Items[i]
		if s.DeletionTimestamp != nil {
			continue
		}
		c.mu.Lock()
		c.namespaces[name] = s.Namespace
		c.mu.Unlock()
		return s, nil
	}
	c.mu.Lock()
	delete(c.namespaces, name)
	c.mu.Unlock()
	return nil, errcode.Errorf(errcode.NotFound, "service %q not found on compute target %q", name, c.name)
}

func (c *Cluster) applyOpts() metav1.ApplyOptions {
	return metav1.ApplyOptions{FieldManager: c.opts.FieldManager, Force: true}
}

// ensureNamespace creates ns when it does not exist; an existing namespace
// is left untouched.
func (c *Cluster) ensureNamespace(ctx context.Context, ns string) error {
	_, err := c.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return apiError(err, "namespace %q", ns)
	}
	_, err = c.client.CoreV1().Namespaces().Apply(ctx, namespaceApply(ns), c.applyOpts())
	return apiError(err, "create namespace %q", ns)
}

// ApplyService creates or updates the service's objects by server-side
// apply: the namespace (when missing), the Secret, then each version's
// Deployment and Service owned by the Secret; versions no longer in spec are
// deleted. Objects of the same name that aksml does not manage are never
// taken over (AlreadyExists). A service already deployed in another
// namespace is InvalidArgument.
func (c *Cluster) ApplyService(ctx context.Context, spec *driver.ServiceSpec) error {
	ns := c.namespaceFor(spec)
	if old, err := c.find(ctx, spec.Name); err == nil && old.Namespace != ns {
		return errcode.Errorf(errcode.InvalidArgument, "namespace %q: service %q is deployed in namespace %q, and the namespace of a deployed service cannot change", ns, spec.Name, old.Namespace)
	} else if err != nil && !errors.Is(err, errcode.NotFound) {
		return err
	}
	if err := c.ensureNamespace(ctx, ns); err != nil {
		return err
	}
	if err := c.checkUnmanaged(ctx, ns, spec); err != nil {
		return err
	}
	sa := c.secretApply(ns, spec)
	names := make([]string, len(spec.Versions))
	for i, v := range spec.Versions {
		names[i] = v.Name
	}
	vb, _ := json.Marshal(names)
	sa.Annotations[AnnotationVersions] = string(vb)
	root, err := c.client.CoreV1().Secrets(ns).Apply(ctx, sa, c.applyOpts())
	if err != nil {
		return apiError(err, "service %q: apply secret", spec.Name)
	}
	c.mu.Lock()
	c.namespaces[spec.Name] = ns
	c.mu.Unlock()
	owner := ownerRef(root.Name, string(root.UID))
	gpuSelector := false
	for _, v := range spec.Versions {
		if v.Replica.GPUs > 0 {
			nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: LabelAccelerator + "=nvidia", Limit: 1})
			if err != nil {
				return apiError(err, "service %q: list GPU nodes", spec.Name)
			}
			gpuSelector = len(nodes.Items) > 0
			break
		}
	}
	for i := range spec.Versions {
		v := &spec.Versions[i]
		name := objectName(spec.Name, v.Name)
		var current int32
		cur, err := c.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		exists := err == nil
		if exists && cur.Spec.Replicas != nil {
			current = *cur.Spec.Replicas
		}
		if _, err := c.client.AppsV1().Deployments(ns).Apply(ctx, c.deploymentApply(ns, spec, v, owner, replicas(v, current, exists), gpuSelector), c.applyOpts()); err != nil {
			return apiError(err, "service %q version %q: apply deployment", spec.Name, v.Name)
		}
		if _, err := c.client.CoreV1().Services(ns).Apply(ctx, serviceApply(ns, spec, v, owner), c.applyOpts()); err != nil {
			return apiError(err, "service %q version %q: apply service", spec.Name, v.Name)
		}
	}
	return c.pruneVersions(ctx, ns, spec.Name, names)
}

// checkUnmanaged refuses to overwrite same-named objects aksml does not
// manage.
func (c *Cluster) checkUnmanaged(ctx context.Context, ns string, spec *driver.ServiceSpec) error {
	check := func(kind, name string, l map[string]string, err error) error {
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return apiError(err, "%s %s/%s", kind, ns, name)
		}
		if l[LabelManagedBy] != ManagedBy || l[LabelService] != spec.Name {
			return errcode.Errorf(errcode.AlreadyExists, "service %q: %s %s/%s exists and is not managed by aksml for this service; rename the service or remove the %s", spec.Name, kind, ns, name, kind)
		}
		return nil
	}
	s, err := c.client.CoreV1().Secrets(ns).Get(ctx, SecretName(spec.Name), metav1.GetOptions{})
	if err := check("secret", SecretName(spec.Name), s.GetLabels(), err); err != nil {
		return err
	}
	for _, v := range spec.Versions {
		name := objectName(spec.Name, v.Name)
		d, err := c.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err := check("deployment", name, d.GetLabels(), err); err != nil {
			return err
		}
		svc, err := c.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err := check("service", name, svc.GetLabels(), err); err != nil {
			return err
		}
	}
	return nil
}

// pruneVersions deletes the Deployments and Services of versions not in
// keep.
func (c *Cluster) pruneVersions(ctx context.Context, ns, service string, keep []string) error {
	sel := labels.Set{LabelManagedBy: ManagedBy, LabelService: service}.String()
	bg := metav1.DeletePropagationBackground
	deps, err := c.client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return apiError(err, "service %q: list deployments", service)
	}
	for _, d := range deps.Items {
		if !slices.Contains(keep, d.Labels[LabelVersion]) {
			if err := c.client.AppsV1().Deployments(ns).Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
				return apiError(err, "service %q: delete deployment %s", service, d.Name)
			}
		}
	}
	svcs, err := c.client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return apiError(err, "service %q: list services", service)
	}
	for _, s := range svcs.Items {
		if !slices.Contains(keep, s.Labels[LabelVersion]) {
			if err := c.client.CoreV1().Services(ns).Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return apiError(err, "service %q: delete service %s", service, s.Name)
			}
		}
	}
	return nil
}

// DeleteService deletes the service's Secret; the garbage collector then
// deletes everything it owns. The Deployments and Services are also
// deleted directly, so they stop at once even if the garbage collector is
// slow. NotFound if there is no such service.
func (c *Cluster) DeleteService(ctx context.Context, name string) error {
	root, err := c.find(ctx, name)
	if err != nil {
		return err
	}
	ns := root.Namespace
	bg := metav1.DeletePropagationBackground
	if err := c.client.CoreV1().Secrets(ns).Delete(ctx, root.Name, metav1.DeleteOptions{PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &root.UID}}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return errcode.Errorf(errcode.NotFound, "service %q not found on compute target %q", name, c.name)
		}
		return apiError(err, "service %q: delete", name)
	}
	c.mu.Lock()
	delete(c.namespaces, name)
	c.mu.Unlock()
	if err := c.pruneVersions(ctx, ns, name, nil); err != nil {
		return err
	}
	return nil
}

// IssueToken returns a token for a token-auth service, signed with the
// cluster's token key (the Secret aksml-token-signing in the front-end
// namespace, created on first use) that the front-end verifies with.
// FailedPrecondition for a service without token auth.
func (c *Cluster) IssueToken(ctx context.Context, name string) (driver.Token, error) {
	root, err := c.find(ctx, name)
	if err != nil {
		return driver.Token{}, err
	}
	if driver.AuthMode(root.Annotations[AnnotationAuthMode]) != driver.AuthToken {
		return driver.Token{}, errcode.Errorf(errcode.FailedPrecondition, "service %q does not use token auth (token_auth_enabled is false)", name)
	}
	ti, err := c.tokenIssuer(ctx)
	if err != nil {
		return driver.Token{}, err
	}
	t, err := ti.Issue(name)
	if err != nil {
		return driver.Token{}, err
	}
	return driver.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshAfter: t.RefreshAfter, ExpiresOn: t.ExpiryOn}, nil
}

func generationOf(ann map[string]string) int64 {
	g, _ := strconv.ParseInt(ann[AnnotationGeneration], 10, 64)
	return g
}

// Versions returns the version names a service's Secret lists
// (AnnotationVersions), in spec order; none when the annotation is missing
// or does not parse.
func Versions(root *corev1.Secret) []string {
	var names []string
	if err := json.Unmarshal([]byte(root.Annotations[AnnotationVersions]), &names); err != nil {
		return nil
	}
	return names
}

func (c *Cluster) String() string { return fmt.Sprintf("kube cluster %q (%s)", c.name, c.config.Host) }
