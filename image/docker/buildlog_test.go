package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
	"github.com/google/go-cmp/cmp"
)

func TestParseBuildLogSuccess(t *testing.T) {
	t.Parallel()
	stream := `{"stream":"Step 1/3 : FROM scratch"}
{"stream":"\n"}
{"stream":" ---\u003e \n"}
{"stream":"Step 2/3 : COPY srv /srv"}{"stream":"\n ---\u003e 37c23500f7ee\n"}
{"status":"Downloading","id":"abc","progressDetail":{"current":1,"total":2}}
{"aux":{"ID":"sha256:beba31d03661f7bf67accc56549cacd68ab88688261b7613a0b1a60fe410eae9"}}
{"stream":"Successfully built beba31d03661\n"}
`
	var lines []string
	id, err := parseBuildLog(strings.NewReader(stream), func(l string) { lines = append(lines, l) }, 0)
	if err != nil {
		t.Fatal(err)
	}
	if id != "sha256:beba31d03661f7bf67accc56549cacd68ab88688261b7613a0b1a60fe410eae9" {
		t.Fatalf("id %q", id)
	}
	want := []string{"Step 1/3 : FROM scratch", " ---> ", "Step 2/3 : COPY srv /srv", " ---> 37c23500f7ee", "abc: Downloading", "Successfully built beba31d03661"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Fatalf("lines (-want +got):\n%s", diff)
	}
	// Without aux, the short ID of the last line is used.
	id, err = parseBuildLog(strings.NewReader(`{"stream":"Successfully built beba31d03661\n"}`), nil, 0)
	if err != nil || id != "beba31d03661" {
		t.Fatalf("id %q err %v", id, err)
	}
}

func TestParseBuildLogFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stream string
		code   *errcode.Code
		step   int
		instr  string
		msg    []string
	}{
		{
			name: "failing RUN",
			stream: `{"stream":"Step 1/3 : FROM scratch\n"}
{"stream":"Step 2/3 : RUN /nonexistent\n"}
{"stream":" ---\u003e Running in 6db3dd28047f\n"}
{"errorDetail":{"message":"OCI runtime create failed: exec: \"/bin/sh\": no such file"},"error":"OCI runtime create failed"}
`,
			code: errcode.InvalidArgument, step: 2, instr: "RUN /nonexistent",
			msg: []string{`step 2/3 "RUN /nonexistent" failed: OCI runtime create failed: exec`, "last build log lines:", "Running in 6db3dd28047f"},
		},
		{
			name:   "error only in the error field",
			stream: `{"stream":"Step 1/1 : COPY missing /x\n"}{"error":"COPY failed: file not found in build context"}`,
			code:   errcode.InvalidArgument, step: 1, instr: "COPY missing /x",
			msg: []string{"COPY failed"},
		},
		{
			name:   "base image not pullable",
			stream: `{"stream":"Step 1/2 : FROM mcr.microsoft.com/azureml/base:1\n"}{"errorDetail":{"message":"Get \"https://mcr.microsoft.com/v2/\": dial tcp: lookup mcr.microsoft.com: no such host"}}`,
			code:   errcode.Unavailable, step: 1, instr: "FROM mcr.microsoft.com/azureml/base:1",
			msg: []string{"no such host"},
		},
		{
			name:   "before the first step",
			stream: `{"errorDetail":{"message":"dockerfile parse error line 3: unknown instruction: FOO"}}`,
			code:   errcode.InvalidArgument,
			msg:    []string{"before its first step: dockerfile parse error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseBuildLog(strings.NewReader(tt.stream), nil, 0)
			var be *image.BuildError
			if !errors.As(err, &be) {
				t.Fatalf("error %v is not a *image.BuildError", err)
			}
			if !errors.Is(err, image.ErrEnvironmentBuildFailed) || !errors.Is(err, tt.code) || errcode.Of(err) != tt.code {
				t.Fatalf("error %v: codes wrong (want %v)", err, tt.code)
			}
			if be.Step != tt.step || be.Instruction != tt.instr {
				t.Fatalf("step %d %q, want %d %q", be.Step, be.Instruction, tt.step, tt.instr)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
		})
	}
}

func TestParseBuildLogKeepsTail(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := 0; i < 50; i++ {
		b.WriteString(`{"stream":"line ` + strings.Repeat("x", i%3) + "\\n\"}")
	}
	b.WriteString(`{"error":"boom"}`)
	_, err := parseBuildLog(strings.NewReader(b.String()), nil, 5)
	var be *image.BuildError
	if !errors.As(err, &be) || len(be.LastLines) != 5 {
		t.Fatalf("error %v", err)
	}
}

func TestParseBuildLogMalformed(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`{"stream":`, `not json`, ``, `{"stream":"no id\n"}`} {
		_, err := parseBuildLog(strings.NewReader(s), nil, 0)
		if err == nil || errcode.Of(err) == nil {
			t.Errorf("%q: error %v", s, err)
		}
		if errors.Is(err, image.ErrEnvironmentBuildFailed) {
			t.Errorf("%q: a broken stream is not a build failure: %v", s, err)
		}
	}
}
