package docker

import (
	"bytes"
	"testing"
)

// FuzzParseBuildLog feeds arbitrary engine output to the build-log parser:
// it returns an image ID or a coded error, never panics.
func FuzzParseBuildLog(f *testing.F) {
	f.Add([]byte(`{"stream":"Step 1/2 : FROM scratch\n"}{"aux":{"ID":"sha256:00"}}`))
	f.Add([]byte(`{"stream":"Step 2/3 : RUN x"}{"errorDetail":{"message":"boom"}}`))
	f.Add([]byte(`{"stream":"Successfully built abc\n"}`))
	f.Add([]byte(`{"aux":"str"}{"status":"s","id":"i"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := parseBuildLog(bytes.NewReader(data), func(string) {}, 3)
		if err == nil && id == "" {
			t.Fatal("no error and no image ID")
		}
		if err != nil && id != "" {
			t.Fatal("both an error and an image ID")
		}
		if err != nil {
			_ = err.Error()
		}
	})
}
