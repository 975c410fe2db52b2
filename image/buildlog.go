package image

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aksml/aksml/errcode"
)

// ErrEnvironmentBuildFailed is matched (errors.Is) by every image build that
// failed because of the environment's Dockerfile, as Azure ML's
// EnvironmentBuildFailed.
var ErrEnvironmentBuildFailed = errors.New("EnvironmentBuildFailed")

// BuildError is a failed image build. It names the failing step and keeps
// the last lines of the build log. It matches ErrEnvironmentBuildFailed and
// an errcode: Unavailable when the base image could not be pulled,
// InvalidArgument otherwise (a broken Docker step, a missing file, a
// dependency that does not install).
type BuildError struct {
	// Step and Steps number the failing step ("Step 2/3"); 0 when the build
	// failed before its first step.
	Step, Steps int
	// Instruction is the failing Dockerfile instruction ("RUN /nonexistent").
	Instruction string
	// Message is the engine's error.
	Message string
	// LastLines are the last lines of the build log, oldest first.
	LastLines []string

	// Code is the error's code; nil means errcode.InvalidArgument.
	Code *errcode.Code
}

func (e *BuildError) Error() string {
	var b strings.Builder
	b.WriteString("EnvironmentBuildFailed: ")
	if e.Step > 0 {
		fmt.Fprintf(&b, "step %d/%d %q failed: ", e.Step, e.Steps, e.Instruction)
	} else {
		b.WriteString("the build failed before its first step: ")
	}
	b.WriteString(strings.TrimSpace(e.Message))
	if len(e.LastLines) > 0 {
		b.WriteString("\nlast build log lines:")
		for _, l := range e.LastLines {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return b.String()
}

// Unwrap returns the error's code and ErrEnvironmentBuildFailed.
func (e *BuildError) Unwrap() []error {
	c := e.Code
	if c == nil {
		c = errcode.InvalidArgument
	}
	return []error{c, ErrEnvironmentBuildFailed}
}
