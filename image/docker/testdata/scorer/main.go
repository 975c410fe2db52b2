// Command scorer is a stand-in for aksml-score in the image package's tests:
// a static HTTP server that answers GET / with "Healthy", POST /score with
// what it sees of its container (environment, working directory, entry
// script, model files) and GET /open?path=P with the file P.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	port := flag.Int("port", 5001, "port to listen on")
	flag.Parse()
	http.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "Healthy")
	})
	// GET /open?path=P answers the file P opened as a score.py opens it,
	// relative to the working directory; 404 when it cannot be read.
	http.HandleFunc("GET /open", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	http.HandleFunc("POST /score", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		out := map[string]string{
			"input":    string(body),
			"entry":    os.Getenv("AZUREML_ENTRY_SCRIPT"),
			"greeting": os.Getenv("GREETING"),
			"args":     fmt.Sprint(os.Args[1:]),
		}
		if wd, err := os.Getwd(); err == nil {
			out["cwd"] = wd
		}
		// The entry script is named from the app root, as aksml-score
		// reads it.
		if b, err := os.ReadFile(filepath.Join(os.Getenv("AML_APP_ROOT"), os.Getenv("AZUREML_ENTRY_SCRIPT"))); err == nil {
			out["script"] = string(b)
		}
		if b, err := os.ReadFile(filepath.Join(os.Getenv("AZUREML_MODEL_DIR"), "model.txt")); err == nil {
			out["model"] = string(b)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	fmt.Printf("scorer listening on :%d\n", *port)
	if err := http.ListenAndServe(fmt.Sprintf(":%d", *port), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
