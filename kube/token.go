package kube

import (
	"context"
	"crypto/rand"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/aksml/aksml/errcode"
)

// TokenKey returns the cluster's token-signing key from the Secret
// TokenSecret in namespace ns, creating it (32 random bytes) when missing.
// The driver signs tokens with it and the front-end verifies them.
func TokenKey(ctx context.Context, client kubernetes.Interface, ns string) ([]byte, error) {
	secrets := client.CoreV1().Secrets(ns)
	s, err := secrets.Get(ctx, TokenSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{LabelManagedBy: ManagedBy}}}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return nil, apiError(err, "create namespace %q", ns)
			}
		}
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: TokenSecret, Namespace: ns, Labels: map[string]string{LabelManagedBy: ManagedBy}},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{"key": key},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, apiError(err, "create the token key")
		}
		s, err = secrets.Get(ctx, TokenSecret, metav1.GetOptions{})
	}
	if err != nil {
		return nil, apiError(err, "read the token key")
	}
	if len(s.Data["key"]) == 0 {
		return nil, errcode.Errorf(errcode.FailedPrecondition, "secret %s/%s has no key", ns, TokenSecret)
	}
	return s.Data["key"], nil
}
