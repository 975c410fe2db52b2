package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/aksml/aksml/compute/driver"
)

// Labels every object the driver creates carries. A service's objects are
// listed with LabelService=NAME (and LabelManagedBy=ManagedBy).
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "aksml"
	LabelService   = "aksml.io/service"
	LabelVersion   = "aksml.io/version"
	// LabelModelPrefix prefixes one label per model whose name is a valid
	// label name: model.aksml.io/NAME=VERSION.
	LabelModelPrefix = "model.aksml.io/"
)

// Annotations the driver writes. The route settings on each Deployment are
// what the in-cluster front-end reads.
const (
	AnnotationGeneration     = "aksml.io/generation"
	AnnotationAuthMode       = "aksml.io/auth-mode"
	AnnotationEndpoint       = "aksml.io/is-endpoint"
	AnnotationDescription    = "aksml.io/description"
	AnnotationTags           = "aksml.io/tags"
	AnnotationDigest         = "aksml.io/digest"
	AnnotationModels         = "aksml.io/models"
	AnnotationTraffic        = "aksml.io/traffic-percent"
	AnnotationMirror         = "aksml.io/mirror-percent"
	AnnotationDefault        = "aksml.io/is-default"
	AnnotationControl        = "aksml.io/is-control"
	AnnotationMaxConcurrent  = "aksml.io/max-concurrent-requests"
	AnnotationMaxQueueWait   = "aksml.io/max-queue-wait-ms"
	AnnotationScoringTimeout = "aksml.io/scoring-timeout-ms"
	AnnotationAutoscale      = "aksml.io/autoscale"
)

// Secret data keys of a service's Secret.
const (
	SecretPrimaryKey   = "primaryKey"
	SecretSecondaryKey = "secondaryKey"
)

// Container facts of every scoring pod.
const (
	// ContainerName is the scoring container's name.
	ContainerName = "score"
	// ScoringPort is the port the scoring server listens on in the pod (as
	// azureml-inference-server-http does).
	ScoringPort = 5001
	// ResourceGPU is the extended resource GPU replicas request.
	ResourceGPU = "nvidia.com/gpu"
	// LabelAccelerator is the AKS node label of GPU nodes
	// (kubernetes.azure.com/accelerator=nvidia).
	LabelAccelerator = "kubernetes.azure.com/accelerator"
)

// objectName is the name of a version's Deployment and Service: the service
// name for a web service (whose single version is named like it), NAME-VERSION
// for an endpoint version, shortened with a hash when longer than 63.
func objectName(service, version string) string {
	n := service
	if version != service {
		n = service + "-" + version
	}
	if len(n) <= 63 {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return strings.TrimRight(n[:52], "-") + "-" + hex.EncodeToString(sum[:])[:10]
}

var labelName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// modelLabels returns model.aksml.io/NAME=VERSION for each model whose name
// is a valid label name; the others are only in the models annotation.
func modelLabels(models []driver.ModelRef) map[string]string {
	out := map[string]string{}
	for _, m := range models {
		if labelName.MatchString(m.Name) {
			out[LabelModelPrefix+m.Name] = strconv.Itoa(m.Version)
		}
	}
	return out
}

type modelJSON struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	Digest  string `json:"digest,omitempty"`
}

func modelsAnnotation(models []driver.ModelRef) string {
	out := make([]modelJSON, len(models))
	for i, m := range models {
		out[i] = modelJSON{m.Name, m.Version, m.Digest}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func baseLabels(service string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelService: service}
}

func versionLabels(service, version string) map[string]string {
	l := baseLabels(service)
	l[LabelVersion] = version
	return l
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// secretApply is the service's Secret: the root of every object the service
// owns, holding the keys (and nothing else).
func (c *Cluster) secretApply(ns string, spec *driver.ServiceSpec) *corev1ac.SecretApplyConfiguration {
	ann := map[string]string{
		AnnotationGeneration: strconv.FormatInt(spec.Generation, 10),
		AnnotationAuthMode:   string(spec.Auth.Mode),
		AnnotationEndpoint:   strconv.FormatBool(spec.IsEndpoint),
	}
	if spec.Description != "" {
		ann[AnnotationDescription] = spec.Description
	}
	if len(spec.Tags) > 0 {
		b, _ := json.Marshal(spec.Tags)
		ann[AnnotationTags] = string(b)
	}
	s := corev1ac.Secret(SecretName(spec.Name), ns).
		WithLabels(baseLabels(spec.Name)).
		WithAnnotations(ann).
		WithType(corev1.SecretTypeOpaque)
	if spec.Auth.Mode == driver.AuthKey {
		s.WithStringData(map[string]string{SecretPrimaryKey: spec.Auth.PrimaryKey, SecretSecondaryKey: spec.Auth.SecondaryKey})
	}
	return s
}

func ownerRef(secretName, uid string) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion("v1").WithKind("Secret").WithName(secretName).WithUID(types.UID(uid)).
		WithBlockOwnerDeletion(true)
}

// replicas is the count to apply: the fixed count, or for an autoscaled
// version the current count clamped to [min, max] (so re-applying never
// undoes the front-end's scaling).
func replicas(v *driver.VersionSpec, current int32, exists bool) int32 {
	if !v.Scale.Autoscale {
		return int32(v.Scale.Replicas)
	}
	lo, hi := int32(max(v.Scale.Min, 1)), int32(max(v.Scale.Max, v.Scale.Min, 1))
	if !exists {
		return lo
	}
	return min(max(current, lo), hi)
}

func cpuQuantity(cores float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Round(cores*1000)), resource.DecimalSI)
}

func memQuantity(gb float64) resource.Quantity {
	mib := int64(math.Round(gb * 1024))
	return *resource.NewQuantity(mib<<20, resource.BinarySI)
}

func seconds(d time.Duration, floor int32) int32 {
	s := int32(math.Ceil(d.Seconds()))
	return max(s, floor)
}

// deploymentApply is a version's Deployment.
//
// A GPU version tolerates nvidia.com/gpu taints and, when gpuSelector is
// true (some node of the cluster carries the AKS accelerator label), is
// held to kubernetes.azure.com/accelerator=nvidia nodes. On a cluster
// without GPU nodes the selector is left out so that the scheduler reports
// the real shortage, "Insufficient nvidia.com/gpu", as it does on AKS,
// rather than a selector mismatch; the GPU request alone keeps the pods off
// CPU nodes either way.
func (c *Cluster) deploymentApply(ns string, spec *driver.ServiceSpec, v *driver.VersionSpec, owner *metav1ac.OwnerReferenceApplyConfiguration, count int32, gpuSelector bool) *appsv1ac.DeploymentApplyConfiguration {
	r := &v.Replica
	name := objectName(spec.Name, v.Name)
	sel := versionLabels(spec.Name, v.Name)
	labels := versionLabels(spec.Name, v.Name)
	maps.Copy(labels, modelLabels(r.Models))

	ann := map[string]string{
		AnnotationGeneration:     strconv.FormatInt(spec.Generation, 10),
		AnnotationModels:         modelsAnnotation(r.Models),
		AnnotationTraffic:        fmtFloat(v.TrafficPercent),
		AnnotationMirror:         fmtFloat(v.MirrorPercent),
		AnnotationDefault:        strconv.FormatBool(v.IsDefault),
		AnnotationControl:        strconv.FormatBool(v.IsControl),
		AnnotationMaxConcurrent:  strconv.Itoa(max(r.MaxConcurrentPerReplica, 1)),
		AnnotationMaxQueueWait:   ms(r.MaxQueueWait),
		AnnotationScoringTimeout: ms(r.ScoringTimeout),
	}
	if r.Digest != "" {
		ann[AnnotationDigest] = r.Digest
	}
	if v.Scale.Autoscale {
		b, _ := json.Marshal(map[string]any{
			"minReplicas": v.Scale.Min, "maxReplicas": v.Scale.Max,
			"targetUtilization": v.Scale.TargetUtilization, "refreshSeconds": v.Scale.RefreshPeriod.Seconds(),
		})
		ann[AnnotationAutoscale] = string(b)
	}

	podAnn := map[string]string{}
	if r.Digest != "" {
		podAnn[AnnotationDigest] = r.Digest
	}
	pod := corev1ac.PodSpec().
		WithContainers(c.container(spec, v)).
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithTerminationGracePeriodSeconds(30)
	if r.GPUs > 0 {
		if gpuSelector {
			pod.WithNodeSelector(map[string]string{LabelAccelerator: "nvidia"})
		}
		pod.WithTolerations(corev1ac.Toleration().WithKey(ResourceGPU).WithOperator(corev1.TolerationOpExists).WithEffect(corev1.TaintEffectNoSchedule))
	}
	if r.FPGAs > 0 {
		if len(c.opts.FPGANodeSelector) > 0 {
			pod.WithNodeSelector(c.opts.FPGANodeSelector)
		}
		pod.WithTolerations(corev1ac.Toleration().WithKey(c.opts.FPGAResource).WithOperator(corev1.TolerationOpExists).WithEffect(corev1.TaintEffectNoSchedule))
	}
	tmpl := corev1ac.PodTemplateSpec().
		WithLabels(sel).
		WithSpec(pod)
	if len(podAnn) > 0 {
		tmpl.WithAnnotations(podAnn)
	}
	d := appsv1ac.Deployment(name, ns).
		WithLabels(labels).
		WithAnnotations(ann).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(count).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(sel)).
			WithProgressDeadlineSeconds(seconds(c.opts.ProgressDeadline, 1)).
			WithRevisionHistoryLimit(2).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType("RollingUpdate").
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxUnavailable(intstr.FromInt32(0)).
					WithMaxSurge(intstr.FromInt32(1)))).
			WithTemplate(tmpl))
	if owner != nil {
		d.WithOwnerReferences(owner)
	}
	return d
}

// container is the scoring container of a version.
func (c *Cluster) container(spec *driver.ServiceSpec, v *driver.VersionSpec) *corev1ac.ContainerApplyConfiguration {
	r := &v.Replica
	image := r.Image
	if image == "" {
		image = c.opts.DefaultImage
	}
	req := corev1.ResourceList{corev1.ResourceCPU: cpuQuantity(r.CPU), corev1.ResourceMemory: memQuantity(r.MemoryGB)}
	lim := corev1.ResourceList{}
	if r.CPULimit > 0 {
		lim[corev1.ResourceCPU] = cpuQuantity(r.CPULimit)
	}
	if r.MemoryGBLimit > 0 {
		lim[corev1.ResourceMemory] = memQuantity(r.MemoryGBLimit)
	}
	if r.GPUs > 0 {
		lim[ResourceGPU] = *resource.NewQuantity(int64(r.GPUs), resource.DecimalSI)
	}
	if r.FPGAs > 0 {
		lim[corev1.ResourceName(c.opts.FPGAResource)] = *resource.NewQuantity(int64(r.FPGAs), resource.DecimalSI)
	}
	res := corev1ac.ResourceRequirements().WithRequests(req)
	if len(lim) > 0 {
		res.WithLimits(lim)
	}
	var env []*corev1ac.EnvVarApplyConfiguration
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		env = append(env, corev1ac.EnvVar().WithName(k).WithValue(r.Env[k]))
	}
	if r.EntryScript != "" && r.Env["AZUREML_ENTRY_SCRIPT"] == "" {
		env = append(env, corev1ac.EnvVar().WithName("AZUREML_ENTRY_SCRIPT").WithValue(r.EntryScript))
	}
	if r.CollectModelData && r.EntryScript != "" {
		// ModelDataCollector collects (as v1 set it in the container); the
		// records go under ModelDataDir, reachable by the local cluster's
		// processes.
		env = append(env, corev1ac.EnvVar().WithName("AML_MODEL_DC_STORAGE_ENABLED").WithValue("true"))
		if r.ModelDataDir != "" {
			env = append(env, corev1ac.EnvVar().WithName("AKSML_MODEL_DATA_DIR").WithValue(r.ModelDataDir))
		}
	}
	if r.AppInsights {
		// Request telemetry (enable_app_insights, as v1 set it in the
		// container): JSON lines under ModelDataDir, reachable by the local
		// cluster's processes, named by the version and the pod.
		env = append(env, corev1ac.EnvVar().WithName("AML_APP_INSIGHTS_ENABLED").WithValue("true"),
			corev1ac.EnvVar().WithName("AKSML_VERSION_NAME").WithValue(v.Name),
			corev1ac.EnvVar().WithName("AKSML_REPLICA_NAME").WithValueFrom(corev1ac.EnvVarSource().
				WithFieldRef(corev1ac.ObjectFieldSelector().WithFieldPath("metadata.name"))))
		if r.ModelDataDir != "" {
			env = append(env, corev1ac.EnvVar().WithName("AKSML_TELEMETRY_DIR").WithValue(r.ModelDataDir))
		}
	}
	args := []string{
		"--address=0.0.0.0",
		"--port=" + strconv.Itoa(ScoringPort),
		"--worker_count=" + strconv.Itoa(max(r.Workers, 1)),
		"--service_name=" + spec.Name,
	}
	if r.ScoringTimeout > 0 {
		args = append(args, "--scoring_timeout_ms="+ms(r.ScoringTimeout))
	}
	if r.MaxBatchSize > 0 {
		args = append(args, "--max_batch_size="+strconv.Itoa(r.MaxBatchSize), "--max_batch_delay_ms="+ms(r.MaxBatchDelay))
	}
	p := r.Probe
	probe := func(initial time.Duration) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/").WithPort(intstr.FromInt32(ScoringPort))).
			WithInitialDelaySeconds(seconds(initial, 0)).
			WithPeriodSeconds(seconds(p.Period, 1)).
			WithTimeoutSeconds(seconds(p.Timeout, 1)).
			WithSuccessThreshold(int32(max(p.SuccessThreshold, 1))).
			WithFailureThreshold(int32(max(p.FailureThreshold, 1)))
	}
	// Liveness uses every probe setting of the deploy config; readiness
	// the same but without the initial delay, so a replica serves as soon
	// as its server answers.
	liveness := probe(p.InitialDelay).WithSuccessThreshold(1)
	readiness := probe(0)
	ctr := corev1ac.Container().
		WithName(ContainerName).
		WithImage(image).
		WithArgs(args...).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(ScoringPort).WithProtocol(corev1.ProtocolTCP)).
		WithResources(res).
		WithLivenessProbe(liveness).
		WithReadinessProbe(readiness)
	if len(env) > 0 {
		ctr.WithEnv(env...)
	}
	return ctr
}

// serviceApply is a version's Kubernetes Service (ClusterIP, port 80 to the
// scoring port), which the front-end reaches through its EndpointSlices.
func serviceApply(ns string, spec *driver.ServiceSpec, v *driver.VersionSpec, owner *metav1ac.OwnerReferenceApplyConfiguration) *corev1ac.ServiceApplyConfiguration {
	s := corev1ac.Service(objectName(spec.Name, v.Name), ns).
		WithLabels(versionLabels(spec.Name, v.Name)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(versionLabels(spec.Name, v.Name)).
			WithPorts(corev1ac.ServicePort().WithName("http").WithPort(80).WithTargetPort(intstr.FromInt32(ScoringPort)).WithProtocol(corev1.ProtocolTCP)))
	if owner != nil {
		s.WithOwnerReferences(owner)
	}
	return s
}

func namespaceApply(ns string) *corev1ac.NamespaceApplyConfiguration {
	return corev1ac.Namespace(ns).WithLabels(map[string]string{LabelManagedBy: ManagedBy})
}
