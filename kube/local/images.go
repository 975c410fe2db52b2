package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/aksml/aksml/compute/driver"
	"github.com/aksml/aksml/errcode"
)

// ImageNamespace holds the replica templates of entry-script images, one
// ConfigMap each, named by the template's content digest.
const ImageNamespace = "aksml-local-images"

// imagePrefix starts the names of the images the local cluster runs.
const imagePrefix = "aksml.local/"

// storeTemplate records t (an entry script's replica: script, source
// directory, models, interpreter, environment — data, not code) in the
// cluster and returns its image name, aksml.local/SERVICE:VERSION-DIGEST,
// the same for the same template, so re-applying changes nothing.
func storeTemplate(ctx context.Context, client kubernetes.Interface, service, version string, t driver.ReplicaTemplate) (string, error) {
	t.Handler, t.Image = nil, ""
	b, err := json.Marshal(t)
	if err != nil {
		return "", errcode.Wrap(errcode.Internal, err)
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])[:20]
	name := fmt.Sprintf("%s%s:%s-%s", imagePrefix, service, strings.ToLower(version), digest)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "tmpl-" + digest, Namespace: ImageNamespace},
		Data:       map[string]string{"template.json": string(b)},
	}
	_, err = client.CoreV1().ConfigMaps(ImageNamespace).Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ImageNamespace}}
		if _, nerr := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); nerr != nil && !apierrors.IsAlreadyExists(nerr) {
			return "", errcode.Wrap(errcode.Unavailable, nerr)
		}
		_, err = client.CoreV1().ConfigMaps(ImageNamespace).Create(ctx, cm, metav1.CreateOptions{})
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", errcode.Wrap(errcode.Unavailable, fmt.Errorf("store replica template: %w", err))
	}
	return name, nil
}

// loadTemplate reads the template of an image storeTemplate named.
func loadTemplate(ctx context.Context, client kubernetes.Interface, image string) (driver.ReplicaTemplate, bool) {
	var t driver.ReplicaTemplate
	i := strings.LastIndexByte(image, '-')
	if !strings.HasPrefix(image, imagePrefix) || i < 0 {
		return t, false
	}
	cm, err := client.CoreV1().ConfigMaps(ImageNamespace).Get(ctx, "tmpl-"+image[i+1:], metav1.GetOptions{})
	if err != nil {
		return t, false
	}
	if err := json.Unmarshal([]byte(cm.Data["template.json"]), &t); err != nil || t.EntryScript == "" {
		return t, false
	}
	return t, true
}

// deleteBoundPods force-deletes every pod bound to a node: on a cluster
// restarted on its Dir they ran in the process that stopped.
func deleteBoundPods(ctx context.Context, client kubernetes.Interface) error {
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName!="})
	if err != nil {
		return err
	}
	zero := int64(0)
	for _, p := range pods.Items {
		err := client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
