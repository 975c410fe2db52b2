// Command reference is bench/coldbuild's baseline: a program of the same
// purpose built only from public modules aksml already depends on — a plain
// net/http scoring server that also lists the pods of a Kubernetes cluster
// with client-go, as a hand-written "deploy a model on Kubernetes" tool
// would. It is only built, never run, by the benchmark.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		log.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(pods.Items), "pods")
	http.HandleFunc("POST /score", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Data []float64 }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for i := range in.Data {
			in.Data[i] *= 2
		}
		_ = json.NewEncoder(w).Encode(in.Data)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:0", nil))
}
