package benchkit

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aksml/aksml/internal/childproc"
)

var (
	//go:embed flaskapp.py
	flaskApp []byte
	//go:embed echo_score.py
	echoScript []byte
	//go:embed sklearn_score.py
	sklearnScript []byte
	//go:embed sklearn_train.py
	sklearnTrain []byte
)

// Server is one server under test, started in its own process group.
type Server struct {
	Name string
	Addr string // host:port
	Pid  int    // root of the server's process tree, for CPU accounting
	Stop func() // SIGTERM, then after 10 s SIGKILL to the whole group; waits
}

// StopAll stops the servers.
func StopAll(ss []Server) {
	for _, s := range ss {
		s.Stop()
	}
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// StartServer starts cmd in its own process group and waits until GET / on
// port answers 200 (or, with ready "tcp", until port accepts connections).
func StartServer(name string, cmd *exec.Cmd, port int, ready string) (Server, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	cmd.SysProcAttr = childproc.Attr()
	if err := cmd.Start(); err != nil {
		return Server{}, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		// Whatever the leader left behind (nginx's or gunicorn's workers).
		childproc.KillGroup(cmd.Process)
		<-exited
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ready == "tcp" {
			if conn, err := net.Dial("tcp", addr); err == nil {
				conn.Close()
				break
			}
		} else if resp, err := http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			return Server{}, fmt.Errorf("%s exited: %s", name, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return Server{}, fmt.Errorf("%s did not become ready: %s", name, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return Server{Name: name, Addr: addr, Pid: cmd.Process.Pid, Stop: stop}, nil
}

// Script is one score.py with its request and expected answer.
type Script struct {
	Name     string
	Dir      string // source directory holding score.py
	ModelDir string // AZUREML_MODEL_DIR, or ""
	Body     []byte
	Want     []byte // the JSON answer
}

// Setup writes the Flask app and the echo and scikit-learn scripts into
// dir, trains the scikit-learn model with python (Debian's, with
// python3-sklearn), builds cmd/aksml-score into dir and returns the two
// scripts and the aksml-score binary.
func Setup(dir, python string) ([]Script, string, error) {
	scripts, err := setupScripts(dir, python)
	if err != nil {
		return nil, "", err
	}
	bin, err := BuildAksmlScore(dir)
	return scripts, bin, err
}

func setupScripts(dir, python string) ([]Script, error) {
	files := map[string][]byte{"flaskapp.py": flaskApp, "echo/score.py": echoScript, "sklearn/score.py": sklearnScript}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
	}
	sk, err := TrainRidge(dir, python)
	if err != nil {
		return nil, err
	}
	sk.Name, sk.Dir = "sklearn", filepath.Join(dir, "sklearn")
	echoBody := []byte(`{"data": [[1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]], "id": "request-0001"}`)
	return []Script{
		{Name: "echo", Dir: filepath.Join(dir, "echo"), Body: echoBody, Want: echoBody},
		sk,
	}, nil
}

// TrainRidge trains the v1 deployment sample's model (a scikit-learn Ridge
// regression on the diabetes data set) with python (Debian's, with
// python3-sklearn and python3-joblib) into
// dir/azureml-models/sklearn_regression_model/1/sklearn_regression_model.pkl,
// and returns a Script with that ModelDir, a request of two rows of the
// data set and the model's answer to it; Name and Dir are left for the
// caller (the score.py that loads the model).
func TrainRidge(dir, python string) (Script, error) {
	train := filepath.Join(dir, "train.py")
	if err := os.WriteFile(train, sklearnTrain, 0o644); err != nil {
		return Script{}, err
	}
	modelDir := filepath.Join(dir, "azureml-models", "sklearn_regression_model", "1")
	if err := os.MkdirAll(modelDir, 0o755); err != nil {
		return Script{}, err
	}
	sample := filepath.Join(dir, "sample.json")
	if out, err := exec.Command(python, train, filepath.Join(modelDir, "sklearn_regression_model.pkl"), sample).CombinedOutput(); err != nil {
		return Script{}, fmt.Errorf("training the sklearn model (needs python3-sklearn): %v\n%s", err, out)
	}
	body, want, err := ReadSample(sample)
	if err != nil {
		return Script{}, err
	}
	return Script{ModelDir: modelDir, Body: body, Want: want}, nil
}

// ReadSample reads the sample a training script writes ({"data": rows,
// "expected": predictions}) and returns the scoring request's body
// ({"data": rows}) and the JSON answer expected for it.
func ReadSample(path string) (body, want []byte, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var s struct {
		Data     [][]float64 `json:"data"`
		Expected []float64   `json:"expected"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	body, _ = json.Marshal(map[string]any{"data": s.Data})
	want, _ = json.Marshal(s.Expected)
	return body, want, nil
}

// BuildAksmlScore compiles cmd/aksml-score (static, as it ships) into dir
// and returns the binary's path. It runs the go command in the current
// directory, which must be inside the aksml module.
func BuildAksmlScore(dir string) (string, error) {
	bin := filepath.Join(dir, "aksml-score")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/aksml/aksml/cmd/aksml-score")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/aksml-score (run the benchmark from the aksml repository): %v\n%s", err, out)
	}
	return bin, nil
}

// StartAksmlScore runs aksml-score (bin) on sc with workers Python workers.
func StartAksmlScore(name, bin, python string, sc Script, workers int) (Server, error) {
	return StartAksmlScoreWith(name, bin, python, sc, "score.py", workers, nil)
}

// StartAksmlScoreWith is StartAksmlScore with the entry script entry (a
// file in sc.Dir) and env (KEY=VALUE) added to the server's environment.
func StartAksmlScoreWith(name, bin, python string, sc Script, entry string, workers int, env []string) (Server, error) {
	port, err := FreePort()
	if err != nil {
		return Server{}, err
	}
	args := []string{"--entry_script", filepath.Join(sc.Dir, entry), "--source_dir", sc.Dir,
		"--port", strconv.Itoa(port), "--worker_count", strconv.Itoa(workers), "--interpreter", python}
	if sc.ModelDir != "" {
		args = append(args, "--model_dir", sc.ModelDir)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if v := os.Getenv("AKSML_BENCH_SCORE_ENV"); v != "" { // diagnostics: K=V[,K=V] for aksml-score only
		cmd.Env = append(cmd.Env, strings.Split(v, ",")...)
	}
	return StartServer(name, cmd, port, "")
}

// StartGunicorn runs gunicorn with the Flask app Setup wrote into dir,
// hosting sc, with workers workers of the given class ("sync", or
// "gthread" with threads threads each).
func StartGunicorn(name, python, dir string, sc Script, mode string, workers, threads int) (Server, error) {
	port, err := FreePort()
	if err != nil {
		return Server{}, err
	}
	args := []string{"-m", "gunicorn", "--bind", "127.0.0.1:" + strconv.Itoa(port), "--workers", strconv.Itoa(workers),
		"--worker-class", mode, "--log-level", "warning", "--timeout", "300", "--chdir", dir}
	if mode == "gthread" {
		args = append(args, "--threads", strconv.Itoa(threads))
	}
	args = append(args, "flaskapp:app")
	cmd := exec.Command(python, args...)
	cmd.Dir = sc.Dir
	cmd.Env = append(os.Environ(), "BENCH_ENTRY_SCRIPT="+filepath.Join(sc.Dir, "score.py"), "AZUREML_MODEL_DIR="+sc.ModelDir)
	s, err := StartServer(name, cmd, port, "")
	if err != nil {
		return Server{}, fmt.Errorf("%w (needs Debian's gunicorn and python3-flask)", err)
	}
	// Every worker loads the script (and the model) when it boots: give them
	// all the time to do so before measuring.
	time.Sleep(time.Second)
	return s, nil
}

// Check sends one request to url with the header lines and compares the
// JSON answer with want.
func Check(url string, body, want []byte, headers ...[2]string) error {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		req.Header.Set(h[0], h[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, got)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("answer %q: %w", got, err)
	}
	_ = json.Unmarshal(want, &w)
	if fmt.Sprint(g) != fmt.Sprint(w) {
		return fmt.Errorf("answer %s, want %s", got, want)
	}
	return nil
}

// NginxConf is the configuration of an nginx with prefix dir, listening on
// 127.0.0.1:port, with workers worker processes and an upstream pool "up"
// over upstreams (host:port). With location set it is a front-end: it
// answers only location, checks the Bearer key with a map, passes the
// request to the pool's /score over kept-alive connections and drops the
// Authorization header. Otherwise it passes everything to the pool as it
// comes, one connection per request (as the nginx of a v1 model container
// did in front of gunicorn, whose sync workers close every connection).
func NginxConf(dir string, port, workers int, key, location string, upstreams []string) string {
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "    server %s;\n", u)
	}
	keepalive := ""
	loc := `    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 300s;
    }
`
	if location != "" {
		keepalive = "    keepalive 256;\n"
		loc = fmt.Sprintf(`    location = %s {
      if ($key_ok = 0) { return 401; }
      proxy_pass http://up/score;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
    }
`, location)
	}
	return fmt.Sprintf(`worker_processes %d;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
daemon off;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  client_max_body_size 100m;
  map $http_authorization $key_ok {
    default 0;
    "Bearer %[3]s" 1;
  }
  upstream up {
%[4]s%[5]s  }
  server {
    listen 127.0.0.1:%[6]d;
%[7]s  }
}
`, workers, dir, key, servers.String(), keepalive, port, loc)
}
