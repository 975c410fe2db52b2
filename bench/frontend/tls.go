package main

// The -tls mode: the router's ServeTLS (its lean engine over crypto/tls) against
// nginx terminating TLS, both with the same ECDSA P-256 certificate (from
// internal/pki), TLS 1.2 and 1.3 allowed, each server's default cipher
// suites, in front of the same replicas.
//
// Two measures, each router then nginx or nginx then router (the order
// alternates by round), over rounds:
//   - keep-alive: tlsConns closed-loop clients, each on one kept-alive TLS
//     connection (opened during the warm-up): requests/s, p50, p99;
//   - new connection: tlsHandshakeConns closed-loop clients, each request
//     on a fresh TCP and TLS connection (a full handshake; the request says
//     Connection: close and the server closes): connections/s, p50, p99 of
//     connect + handshake + request.
//
// The load generator is this process (crypto/tls, the client of
// benchkit with a TLS dialer). It offers only X25519 for the key exchange
// (Go's default also offers X25519MLKEM768, which nginx's OpenSSL 3.0 does
// not have: the router would do a costlier exchange than nginx), keeps no
// session (so no handshake resumes, on either server) and skips the chain
// verification, which the check before the run does once, so that its own
// cost per handshake is as small as a client's can be. Both servers keep
// their default session tickets: what each issues per connection is printed
// (unused by the client).

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aksml/aksml/bench/internal/benchkit"
	"github.com/aksml/aksml/internal/pki"
)

const (
	tlsConns          = 64 // keep-alive clients, as wrk's connections in the plain mode
	tlsHandshakeConns = 32 // new-connection clients
)

type tlsSetup struct {
	self, nginx  string
	cores, procs int
	quick        bool
	replicas     *child
	replicaPorts []string
	routerEnv    []string
	keep         func(*child) // stops the child when the benchmark ends
}

// tlsCell is one target's measure in one round.
type tlsCell struct {
	benchkit.Cell
	clientCores float64 // CPU of this process (the load generator) over the run, in cores
	idle        float64 // share of the machine's CPU left idle over the run
	dials       int64   // connections the clients opened
}

func orchestrateTLS(o tlsSetup) error {
	dir, err := os.MkdirTemp("", "aksml-bench-tls-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	now := time.Now()
	ca, err := pki.NewCA("aksml bench CA", now, 24*time.Hour)
	if err != nil {
		return err
	}
	kp, err := ca.Issue([]string{"127.0.0.1", "localhost"}, now, 24*time.Hour)
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, kp.CertPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
		return err
	}

	rt, rtPort, err := start(append(o.routerEnv, "AKSML_BENCH_ENGINE=tls", "AKSML_BENCH_TLS_CERT="+certFile, "AKSML_BENCH_TLS_KEY="+keyFile), o.self)
	if err != nil {
		return err
	}
	o.keep(rt)
	// nginx's keepalive_requests (1000 by default) would make it close a
	// kept-alive connection every 1000 requests and the client handshake
	// again; the router has no such limit, so neither has nginx here.
	ngxConf := fmt.Sprintf("    ssl_certificate %s;\n    ssl_certificate_key %s;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    keepalive_requests 1000000;\n", certFile, keyFile)
	if v := os.Getenv("AKSML_BENCH_NGINX_TLS"); v != "" { // extra nginx directives: diagnostics only
		ngxConf += "    " + v + "\n"
	}
	ngx, ngxPort, err := startNginx(o.nginx, o.cores, o.replicaPorts, ngxConf)
	if err != nil {
		return err
	}
	o.keep(ngx)

	type tgt struct {
		name, addr string
		pids       []int
	}
	targets := []tgt{
		{"aksml (ServeTLS)", "127.0.0.1:" + rtPort, []int{rt.cmd.Process.Pid}},
		{"nginx", "127.0.0.1:" + ngxPort, []int{ngx.cmd.Process.Pid}},
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	verified := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.X25519}, NextProtos: []string{"http/1.1"}}
	load := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.X25519}, NextProtos: []string{"http/1.1"}}
	fmt.Printf("bench/frontend -tls: %d cores, %d replicas, nginx %s worker_processes %d, router GOMAXPROCS %d\n",
		o.cores, numReplicas, nginxVersion(o.nginx), o.cores, o.procs)
	fmt.Printf("certificate: ECDSA P-256 leaf for 127.0.0.1 and localhost + its CA, the same files on both; TLS 1.2 and 1.3 allowed on both, default ciphers\n")
	for _, t := range targets {
		desc, err := checkTLS(t.addr, verified)
		if err != nil {
			return fmt.Errorf("%s: %v", t.name, err)
		}
		fmt.Printf("  %-17s %s\n", t.name, desc)
	}
	fmt.Printf("CPUs each may run on: router %s, nginx workers %s, replicas %s, load generator %s\n",
		cpusAllowed(rt.cmd.Process.Pid), cpusAllowed(childPids(ngx.cmd.Process.Pid)...), cpusAllowed(o.replicas.cmd.Process.Pid), cpusAllowed(os.Getpid()))
	load0 := loadAvg()

	path := "/api/v1/service/" + service + "/score"
	rounds, warm, dur := 10, 300*time.Millisecond, time.Second
	if o.quick {
		rounds = 3
	}
	fmt.Printf("load average before the run: %s; %d rounds of %v per target and measure (after a %v warm-up), order alternating\n", load0, rounds, dur, warm)
	measure := func(t tgt, handshake bool) tlsCell {
		var dials atomic.Int64
		end := time.Now().Add(warm + dur + 10*time.Second) // no connection outlives the run by more
		dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: load}
		dial := func(addr string) (net.Conn, error) {
			dials.Add(1)
			c, err := dialer.Dial("tcp", addr)
			if err == nil {
				c.SetDeadline(end)
			}
			return c, err
		}
		headers := []string{"Authorization: Bearer " + key}
		conns := tlsConns
		if handshake {
			headers = append(headers, "Connection: close")
			conns = tlsHandshakeConns
		}
		req := benchkit.Request(t.addr, path, []byte(body), headers...)
		c0, s0 := benchkit.SelfCPU(), readCPUStat()
		t0 := time.Now()
		cell := benchkit.ClosedWith(func() *benchkit.Client { return &benchkit.Client{Addr: t.addr, Dial: dial} }, req, conns, warm, dur, t.pids...)
		secs := time.Since(t0).Seconds()
		s1 := readCPUStat()
		out := tlsCell{Cell: cell, clientCores: (benchkit.SelfCPU() - c0).Seconds() / secs, dials: dials.Load()}
		if tot := s1.total - s0.total; tot > 0 {
			out.idle = float64(s1.idle-s0.idle) / float64(tot)
		}
		return out
	}
	cells := map[string]*[2][]tlsCell{}
	for _, t := range targets {
		cells[t.name] = &[2][]tlsCell{}
		measure(t, false) // first connections, and the router's and nginx's warm-up
	}
	if only := os.Getenv("AKSML_BENCH_TLS_ONLY"); only != "" { // keepalive|newconn ROUNDS: diagnostics only
		what, n, _ := strings.Cut(only, " ")
		rounds, _ := strconv.Atoi(n)
		for r := 0; r < rounds; r++ {
			for k := range targets {
				t := targets[(k+r)%len(targets)]
				c := measure(t, what == "newconn")
				fmt.Printf("%-17s %s %6.0f/s p50 %.3f p99 %.3f ms, server CPU %.1f µs, client %.2f cores, idle %.0f%%, %d errors\n",
					t.name, what, c.RPS, ms(c.P50), ms(c.P99), float64(c.CPU)/float64(time.Microsecond), c.clientCores, 100*c.idle, c.Errs)
			}
		}
		return nil
	}
	for r := 0; r < rounds; r++ {
		for m, handshake := range []bool{false, true} {
			for k := range targets {
				t := targets[(k+r)%len(targets)]
				c := measure(t, handshake)
				if c.Errs > 0 || c.N == 0 {
					return fmt.Errorf("%s: %d requests failed, %d answered", t.name, c.Errs, c.N)
				}
				cells[t.name][m] = append(cells[t.name][m], c)
			}
		}
	}
	load1 := loadAvg()

	// Within-round ratios router ÷ nginx, and their median.
	ratio := func(m int, f func(tlsCell) float64) []float64 {
		a, b := cells[targets[0].name][m], cells[targets[1].name][m]
		out := make([]float64, len(a))
		for i := range a {
			out[i] = f(a[i]) / f(b[i])
		}
		return out
	}
	med := func(name string, m int, f func(tlsCell) float64) float64 {
		var x []float64
		for _, c := range cells[name][m] {
			x = append(x, f(c))
		}
		return median(x)
	}
	rps := func(c tlsCell) float64 { return c.RPS }
	p50 := func(c tlsCell) float64 { return ms(c.P50) }
	p99 := func(c tlsCell) float64 { return ms(c.P99) }
	cpu := func(c tlsCell) float64 { return float64(c.CPU) / float64(time.Microsecond) }
	cli := func(c tlsCell) float64 { return c.clientCores }
	idle := func(c tlsCell) float64 { return 100 * c.idle }

	fmt.Println()
	fmt.Printf("%-17s | %-14s | %9s | %8s | %8s | %13s | %12s | %7s\n", "target", "measure", "rate/s", "p50 ms", "p99 ms", "server CPU µs", "client cores", "idle %")
	fmt.Println(strings.Repeat("-", 17) + "-+-" + strings.Repeat("-", 14) + "-+-" + strings.Repeat("-", 9) + "-+-" + strings.Repeat("-", 8) + "-+-" + strings.Repeat("-", 8) + "-+-" + strings.Repeat("-", 13) + "-+-" + strings.Repeat("-", 12) + "-+-" + strings.Repeat("-", 7))
	for m, label := range []string{fmt.Sprintf("keep-alive c%d", tlsConns), fmt.Sprintf("new conn c%d", tlsHandshakeConns)} {
		for _, t := range targets {
			fmt.Printf("%-17s | %-14s | %9.0f | %8.3f | %8.3f | %13.1f | %12.2f | %7.1f\n", t.name, label,
				med(t.name, m, rps), med(t.name, m, p50), med(t.name, m, p99), med(t.name, m, cpu), med(t.name, m, cli), med(t.name, m, idle))
		}
	}
	fmt.Println("(medians over the rounds; server CPU is the server's process tree per request, user+system from /proc;")
	fmt.Println(" client cores is the load generator's CPU; idle is the whole machine's idle share during the run)")
	var kaDials, kaReqs int64
	for _, t := range targets {
		for _, c := range cells[t.name][0] {
			kaDials += c.dials
			kaReqs += int64(c.N)
		}
	}
	fmt.Printf("keep-alive runs opened %d connections for %d requests (%d clients per run)\n", kaDials, kaReqs, tlsConns)
	kr, hr := ratio(0, rps), ratio(1, rps)
	fmt.Printf("aksml vs nginx over %d rounds: keep-alive req/s %.2f–%.2f (goal ≥ 0.9, met in %d), new connections/s %.2f–%.2f (goal ≥ 0.8, met in %d)\n",
		rounds, slices.Min(kr), slices.Max(kr), countAbove(kr, 0.9-1e-9), slices.Min(hr), slices.Max(hr), countAbove(hr, 0.8-1e-9))
	fmt.Printf("load average before %s, after %s\n", load0, load1)
	fmt.Printf("\nRESULT tls_rps_ratio_vs_nginx=%.2f tls_handshake_ratio_vs_nginx=%.2f tls_p50_ratio_vs_nginx=%.2f tls_p99_ratio_vs_nginx=%.2f "+
		"tls_cpu_per_req_ratio_vs_nginx=%.2f tls_handshake_p99_ratio_vs_nginx=%.2f tls_handshake_cpu_ratio_vs_nginx=%.2f tls_client_cores=%.2f\n",
		median(kr), median(hr), median(ratio(0, p50)), median(ratio(0, p99)), median(ratio(0, cpu)),
		median(ratio(1, p99)), median(ratio(1, cpu)), max(med(targets[0].name, 1, cli), med(targets[1].name, 1, cli)))
	return nil
}

// checkTLS checks that addr serves the scoring answer over verified TLS and
// refuses a wrong key, and describes what one connection negotiated and how
// many session tickets the server issued on it.
func checkTLS(addr string, cfg *tls.Config) (string, error) {
	tickets := &ticketCounter{}
	cfg = cfg.Clone()
	cfg.ClientSessionCache = tickets
	var state tls.ConnectionState
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true, ForceAttemptHTTP2: false,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "https://" + addr + "/api/v1/service/" + service + "/score"
	for _, k := range []string{key, "wrong"} {
		req, _ := http.NewRequest("POST", url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := cl.Do(req)
		if err != nil {
			return "", err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if k == key {
			if resp.StatusCode != 200 || string(b) != answer {
				return "", fmt.Errorf("got %d %q", resp.StatusCode, b)
			}
			state = *resp.TLS
		} else if resp.StatusCode != 401 {
			return "", fmt.Errorf("wrong key got %d, want 401", resp.StatusCode)
		}
	}
	// One more connection read to its end, so that tickets sent after the
	// handshake are counted as well.
	tickets.n.Store(0)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write(benchkit.Request(addr, "/api/v1/service/"+service+"/score", []byte(body), "Authorization: Bearer "+key, "Connection: close"))
	io.Copy(io.Discard, conn)
	conn.Close()
	return fmt.Sprintf("%s %s, key exchange %s, ALPN %q, %d session ticket(s) per connection",
		tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite), state.CurveID, state.NegotiatedProtocol, tickets.n.Load()), nil
}

// ticketCounter is a client session cache that counts the tickets stored.
type ticketCounter struct{ n atomic.Int64 }

func (c *ticketCounter) Get(k string) (*tls.ClientSessionState, bool) {
	return nil, false // never resume
}

func (c *ticketCounter) Put(k string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.n.Add(1)
	}
}

func nginxVersion(bin string) string {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

type cpuStat struct{ idle, total int64 }

// readCPUStat reads the machine's idle and total CPU ticks from /proc/stat.
func readCPUStat() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var s cpuStat
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		s.total += n
		if i == 3 || i == 4 { // idle, iowait
			s.idle += n
		}
	}
	return s
}
