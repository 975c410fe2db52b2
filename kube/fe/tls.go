package fe

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/aksml/aksml/kube"
)

// The front end's certificate. FrontEnd watches the Secret
// kube.FrontEndTLSSecret in Options.TLSNamespace (a watch of that one
// name) and hands the router what it holds: on add or update the
// certificate (Router.SetCertificate: new handshakes present it, open
// connections keep theirs, the HTTPS listener never restarts) and the
// redirect of plain HTTP to https://CNAME[:HTTPSPort]; on delete, neither.
// A Secret that does not parse is logged and ignored: the certificate
// served before stays.

// newTLSInformer watches the Secret kube.FrontEndTLSSecret in ns.
func newTLSInformer(f *FrontEnd, ns string, resync time.Duration) informers.SharedInformerFactory {
	factory := informers.NewSharedInformerFactoryWithOptions(f.client, resync,
		informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", kube.FrontEndTLSSecret).String()
		}))
	f.tlsSecrets = factory.Core().V1().Secrets().Informer()
	_, _ = f.tlsSecrets.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    f.setTLS,
		UpdateFunc: func(_, obj any) { f.setTLS(obj) },
		DeleteFunc: f.clearTLS,
	})
	return factory
}

// setTLS serves the certificate of the Secret obj.
func (f *FrontEnd) setTLS(obj any) {
	s, ok := obj.(*corev1.Secret)
	if !ok || s.Name != kube.FrontEndTLSSecret {
		return
	}
	t, err := kube.ParseTLSSecret(s)
	if err != nil {
		f.log.Error("front-end: TLS secret refused; the certificate served before stays", "secret", s.Namespace+"/"+s.Name, "resourceVersion", s.ResourceVersion, "err", err)
		return
	}
	base := kube.HTTPSBase(t.CName, f.httpsPort)
	// The certificate first: a client redirected to HTTPS finds it.
	f.router.SetCertificate(&t.Certificate)
	f.router.SetHTTPSRedirect(base)
	f.log.Info("front-end: serving TLS", "cname", t.CName, "base", base, "sha256", t.SHA256(), "notAfter", t.Certificate.Leaf.NotAfter)
}

// clearTLS stops serving HTTPS when the Secret obj is deleted.
func (f *FrontEnd) clearTLS(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if s, ok := obj.(*corev1.Secret); !ok || s.Name != kube.FrontEndTLSSecret {
		return
	}
	// The redirect first: no client is sent to a port without a
	// certificate.
	f.router.SetHTTPSRedirect("")
	f.router.SetCertificate(nil)
	f.log.Info("front-end: TLS off, serving plain HTTP")
}
