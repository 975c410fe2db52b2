package local

import (
	"strings"
	"testing"
)

// FuzzLogRing: whatever a container writes, in whatever pieces, the ring
// keeps its lines in order and loses nothing but what is past its size.
func FuzzLogRing(f *testing.F) {
	f.Add("listening on http://127.0.0.1:5001\ninit done\n", 3)
	f.Add("no newline at the end", 1)
	f.Add("crlf\r\nline\r\n\n\n", 2)
	f.Fuzz(func(t *testing.T, text string, cut int) {
		r := newLogRing()
		if cut < 0 {
			cut = -cut
		}
		for rest := text; rest != ""; {
			n := min(len(rest), cut%7+1)
			if _, err := r.Write([]byte(rest[:n])); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		want := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if text == "" {
			want = nil
		}
		for i := range want {
			want[i] = strings.TrimRight(want[i], "\r")
		}
		if !strings.HasSuffix(text, "\n") && len(want) > 0 {
			// the partial last line is kept as written
			want[len(want)-1] = text[strings.LastIndexByte(text, '\n')+1:]
		}
		if len(want) > logLines {
			want = want[len(want)-logLines:]
		}
		got := r.lines(0)
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
			t.Fatalf("lines %q, want %q", got, want)
		}
		if tail := r.lines(1); len(want) > 0 && tail[0] != want[len(want)-1] {
			t.Fatalf("tail %q, want %q", tail, want[len(want)-1])
		}
	})
}
