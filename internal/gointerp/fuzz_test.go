package gointerp

import "testing"

// FuzzSplit: any cell text splits into ordered, non-overlapping segments
// inside the text, and IsComplete answers one of its three words, without
// panicking.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"x := 1\nfunc f() {}\nf()", "import \"fmt\"; fmt.Println(1)", "func (p P) M() {}",
		"func() { }()", "s := `a\nb`", "for i := range 3 {", "type T struct{}; var t T", "}}}{{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		end := 0
		for _, s := range split(src) {
			if s.start < end || s.end < s.start || s.end > len(src) {
				t.Fatalf("segment %+v after %d in %d bytes", s, end, len(src))
			}
			end = s.end
		}
		switch st, _ := IsComplete(src); st {
		case "complete", "incomplete", "invalid":
		default:
			t.Fatalf("IsComplete = %q", st)
		}
	})
}
