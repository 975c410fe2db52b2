package kube

import (
	"context"
	"net"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	"github.com/aksml/aksml/errcode"
)

// Names of the in-cluster front-end's objects, as azureml-fe's (reference
// §1): they live in Options.FrontEndNamespace, except the cluster-scoped
// role and binding.
const (
	FrontEndName        = "azureml-fe"
	FrontEndRole        = "azureml-fe-role"
	FrontEndRoleBinding = "azureml-fe-binding"
	FrontEndConfigMap   = "azuremlfeconfig"
	// FrontEndPort is the port aksml-fe listens on in its pod; the Service
	// exposes it on port 80 (and FrontEndTLSPort on port 443).
	FrontEndPort = 9001
	// DefaultFrontEndImage is the image of cmd/aksml-fe.
	DefaultFrontEndImage = "aksml/aksml-fe:latest"

	// AnnotationInternalLoadBalancer and AnnotationInternalSubnet are the
	// annotations with which the Azure cloud provider gives a LoadBalancer
	// Service a private address, on the named subnet, instead of a public
	// IP.
	AnnotationInternalLoadBalancer = "service.beta.kubernetes.io/azure-load-balancer-internal"
	AnnotationInternalSubnet       = "service.beta.kubernetes.io/azure-load-balancer-internal-subnet"
)

// InstallOptions say how InstallFrontEndWith installs the front-end.
type InstallOptions struct {
	// Image is the image of cmd/aksml-fe; empty means
	// DefaultFrontEndImage.
	Image string
	// InternalLoadBalancer exposes the front-end on a private address of
	// LoadBalancerSubnet (empty: the nodes' subnet) instead of a public IP.
	InternalLoadBalancer bool
	LoadBalancerSubnet   string
}

// InstallFrontEnd installs the front-end in image (InstallFrontEndWith),
// exposed as Options.FrontEndInternalLoadBalancer and
// Options.FrontEndLoadBalancerSubnet say.
func (c *Cluster) InstallFrontEnd(ctx context.Context, image string) error {
	return c.InstallFrontEndWith(ctx, InstallOptions{
		Image:                image,
		InternalLoadBalancer: c.opts.FrontEndInternalLoadBalancer,
		LoadBalancerSubnet:   c.opts.FrontEndLoadBalancerSubnet,
	})
}

// InstallFrontEndWith applies the in-cluster front-end (cmd/aksml-fe in
// opts.Image): the token key, a ServiceAccount, a ClusterRole and binding
// that let it watch Secrets (the services' and its certificate,
// FrontEndTLSSecret), Deployments and EndpointSlices and scale
// Deployments, its ConfigMap, a Deployment of two replicas and a
// LoadBalancer Service on port 80 (HTTP) and 443 (HTTPS, served once
// SetTLS gives a certificate) — internal, with the Azure annotations,
// for opts.InternalLoadBalancer. Applying it again changes nothing;
// applying it with other options changes only what differs (a public load
// balancer drops the annotations). A subnet without InternalLoadBalancer is
// InvalidArgument.
func (c *Cluster) InstallFrontEndWith(ctx context.Context, opts InstallOptions) error {
	if opts.LoadBalancerSubnet != "" && !opts.InternalLoadBalancer {
		return errcode.Errorf(errcode.InvalidArgument, "front-end: load_balancer_subnet %q is only allowed with load_balancer_type InternalLoadBalancer", opts.LoadBalancerSubnet)
	}
	image := opts.Image
	if image == "" {
		image = DefaultFrontEndImage
	}
	ns := c.opts.FrontEndNamespace
	if err := c.ensureNamespace(ctx, ns); err != nil {
		return err
	}
	if _, err := TokenKey(ctx, c.client, ns); err != nil {
		return err
	}
	lbl := map[string]string{LabelManagedBy: ManagedBy, "app": FrontEndName}
	ao := c.applyOpts()
	if _, err := c.client.CoreV1().ServiceAccounts(ns).Apply(ctx, corev1ac.ServiceAccount(FrontEndName, ns).WithLabels(lbl), ao); err != nil {
		return apiError(err, "front-end: apply service account")
	}
	read := []string{"get", "list", "watch"}
	role := rbacv1ac.ClusterRole(FrontEndRole).WithLabels(lbl).WithRules(
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("secrets").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("pods").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("apps").WithResources("deployments").WithVerbs(read...),
		rbacv1ac.PolicyRule().WithAPIGroups("apps").WithResources("deployments/scale").WithVerbs("get", "update", "patch"),
		rbacv1ac.PolicyRule().WithAPIGroups("discovery.k8s.io").WithResources("endpointslices").WithVerbs(read...),
	)
	if _, err := c.client.RbacV1().ClusterRoles().Apply(ctx, role, ao); err != nil {
		return apiError(err, "front-end: apply cluster role")
	}
	binding := rbacv1ac.ClusterRoleBinding(FrontEndRoleBinding).WithLabels(lbl).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup("rbac.authorization.k8s.io").WithKind("ClusterRole").WithName(FrontEndRole)).
		WithSubjects(rbacv1ac.Subject().WithKind("ServiceAccount").WithName(FrontEndName).WithNamespace(ns))
	if _, err := c.client.RbacV1().ClusterRoleBindings().Apply(ctx, binding, ao); err != nil {
		return apiError(err, "front-end: apply cluster role binding")
	}
	// The port clients reach HTTPS on, for the redirect of plain HTTP:
	// 443, or the port of Options.ScoringTLSAddress.
	httpsPort := "443"
	if _, p, err := net.SplitHostPort(c.opts.ScoringTLSAddress); err == nil {
		httpsPort = p
	}
	args := []string{"--listen=0.0.0.0:9001", "--listen-tls=0.0.0.0:9443", "--https-port=" + httpsPort, "--token-namespace=" + ns}
	cm := corev1ac.ConfigMap(FrontEndConfigMap, ns).WithLabels(lbl).WithData(map[string]string{
		"listen": "0.0.0.0:9001", "listen-tls": "0.0.0.0:9443", "https-port": httpsPort, "token-namespace": ns,
	})
	if _, err := c.client.CoreV1().ConfigMaps(ns).Apply(ctx, cm, ao); err != nil {
		return apiError(err, "front-end: apply config map")
	}
	probe := corev1ac.Probe().WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromInt32(FrontEndPort))).WithPeriodSeconds(5)
	ctr := corev1ac.Container().WithName(FrontEndName).WithImage(image).
		WithArgs(args...).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(FrontEndPort),
			corev1ac.ContainerPort().WithName("https").WithContainerPort(FrontEndTLSPort)).
		WithResources(corev1ac.ResourceRequirements().WithRequests(corev1.ResourceList{
			corev1.ResourceCPU: cpuQuantity(0.1), corev1.ResourceMemory: memQuantity(0.125),
		})).
		WithReadinessProbe(probe).WithLivenessProbe(probe).
		// The router writes request bodies over 1 MiB to files in /tmp
		// while they arrive; the image (FROM scratch) has no /tmp.
		WithVolumeMounts(corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"))
	dep := appsv1ac.Deployment(FrontEndName, ns).WithLabels(lbl).WithSpec(appsv1ac.DeploymentSpec().
		WithReplicas(2).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": FrontEndName})).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(lbl).WithSpec(corev1ac.PodSpec().
			WithServiceAccountName(FrontEndName).
			WithVolumes(corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource())).
			WithContainers(ctr))))
	if _, err := c.client.AppsV1().Deployments(ns).Apply(ctx, dep, ao); err != nil {
		return apiError(err, "front-end: apply deployment")
	}
	svc := corev1ac.Service(FrontEndName, ns).WithLabels(lbl).WithAnnotations(loadBalancerAnnotations(opts)).WithSpec(corev1ac.ServiceSpec().
		WithType(corev1.ServiceTypeLoadBalancer).
		WithSelector(map[string]string{"app": FrontEndName}).
		WithPorts(corev1ac.ServicePort().WithName("http").WithPort(80).WithTargetPort(intstr.FromInt32(FrontEndPort)).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ServicePort().WithName("https").WithPort(443).WithTargetPort(intstr.FromInt32(FrontEndTLSPort)).WithProtocol(corev1.ProtocolTCP)))
	if _, err := c.client.CoreV1().Services(ns).Apply(ctx, svc, ao); err != nil {
		return apiError(err, "front-end: apply service")
	}
	return nil
}

// loadBalancerAnnotations are the front-end Service's annotations: the
// Azure internal load balancer ones, or none.
func loadBalancerAnnotations(opts InstallOptions) map[string]string {
	if !opts.InternalLoadBalancer {
		return nil
	}
	a := map[string]string{AnnotationInternalLoadBalancer: "true"}
	if opts.LoadBalancerSubnet != "" {
		a[AnnotationInternalSubnet] = opts.LoadBalancerSubnet
	}
	return a
}

// UninstallFrontEnd deletes what InstallFrontEnd created and the front
// end's certificate (FrontEndTLSSecret), except the token key (tokens
// already issued stay valid for a reinstall). Objects already gone are not
// an error.
func (c *Cluster) UninstallFrontEnd(ctx context.Context) error {
	ns := c.opts.FrontEndNamespace
	ignore := func(err error, what string) error {
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		return apiError(err, "front-end: delete %s", what)
	}
	bg := metav1.DeletePropagationBackground
	do := metav1.DeleteOptions{PropagationPolicy: &bg}
	for _, e := range []struct {
		err  error
		what string
	}{
		{c.client.CoreV1().Services(ns).Delete(ctx, FrontEndName, do), "service"},
		{c.client.AppsV1().Deployments(ns).Delete(ctx, FrontEndName, do), "deployment"},
		{c.client.CoreV1().ConfigMaps(ns).Delete(ctx, FrontEndConfigMap, do), "config map"},
		{c.client.RbacV1().ClusterRoleBindings().Delete(ctx, FrontEndRoleBinding, do), "cluster role binding"},
		{c.client.RbacV1().ClusterRoles().Delete(ctx, FrontEndRole, do), "cluster role"},
		{c.client.CoreV1().ServiceAccounts(ns).Delete(ctx, FrontEndName, do), "service account"},
		{c.client.CoreV1().Secrets(ns).Delete(ctx, FrontEndTLSSecret, do), "TLS secret"},
	} {
		if err := ignore(e.err, e.what); err != nil {
			return err
		}
	}
	return nil
}
