package scoring

import (
	"net/http"
	"strings"
	"testing"
)

// printVariants is a score.py printing in the ways print can be called.
const printVariants = `
import io, sys
def init():
    pass
def run(raw_data):
    print()
    print("a", "b", sep="-", end="!\n")
    print("partial", end="")
    print(" done", 2, None)
    print("err", 1, file=sys.stderr, flush=True)
    buf = io.StringIO()
    print("hidden", 3, file=buf)
    try:
        print("x", sep=1)
    except TypeError as e:
        print("TypeError:", e)
    print("none", "sep", sep=None, end=None)
    return buf.getvalue()
`

// With telemetry on, print writes each line in one piece to the captured
// streams; what it prints, what the log and the records get, and its
// errors are those of the built-in print.
func TestTelemetryPrintVariants(t *testing.T) {
	sink := &memorySink{}
	s := pyServer(t, printVariants, Config{Telemetry: &Telemetry{Sink: sink, Service: "svc"}}, nil)
	r := do(s, http.MethodPost, "/score", "x", "x-ms-request-id", "pr-1")
	if r.status != 200 || r.body != `"hidden 3\n"` {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rec := range sink.records() {
		if rec.Kind == TelemetryPrint {
			got = append(got, rec.Stream+": "+rec.Message)
		}
	}
	want := []string{"stdout: ", "stdout: a-b!", "stdout: partial done 2 None", "stderr: err 1",
		"stdout: TypeError: sep must be None or a string, not int", "stdout: none sep"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("print records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	log := strings.Join(s.Logs(0, false), "\n")
	for _, l := range []string{"a-b!", "partial done 2 None", "err 1", "none sep"} {
		if !strings.Contains(log, l) {
			t.Errorf("log lacks %q:\n%s", l, log)
		}
	}
	if strings.Contains(log, "hidden") {
		t.Errorf("a print to a StringIO reached the log:\n%s", log)
	}
}

// With telemetry off, print still writes each line to the log in one piece
// (the worker's own streams are unbuffered: the built-in print would make
// a system call of each argument, separator and end); the log gets what
// the built-in print writes, in order, and errors are the built-in's.
func TestPrintVariantsWithoutTelemetry(t *testing.T) {
	s := pyServer(t, printVariants, Config{}, nil)
	r := do(s, http.MethodPost, "/score", "x")
	if r.status != 200 || r.body != `"hidden 3\n"` {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range s.Logs(0, false) {
		switch {
		case l == "a-b!", l == "partial done 2 None", l == "err 1", strings.HasPrefix(l, "TypeError: sep"), l == "none sep":
			out = append(out, l)
		case strings.Contains(l, "hidden"):
			t.Errorf("a print to a StringIO reached the log: %q", l)
		}
	}
	want := []string{"a-b!", "partial done 2 None", "err 1", "TypeError: sep must be None or a string, not int", "none sep"}
	if strings.Join(out, "|") != strings.Join(want, "|") {
		t.Fatalf("log lines\n%s\nwant\n%s\nlog:\n%s", strings.Join(out, "\n"), strings.Join(want, "\n"), strings.Join(s.Logs(0, false), "\n"))
	}
}
