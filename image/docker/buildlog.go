package docker

import (
	"encoding/json"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/aksml/aksml/errcode"
	"github.com/aksml/aksml/image"
)

var (
	stepLine              = regexp.MustCompile(`^Step (\d+)/(\d+) : (.*)$`)
	successfullyBuiltLine = regexp.MustCompile(`^Successfully built ([0-9a-f]+)$`)
)

// buildMessage is one message of the engine's JSON build stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	ID          string `json:"id"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// parseBuildLog reads the engine's build stream, sends each log line to
// logf, and returns the built image's ID or the build's failure.
func parseBuildLog(r io.Reader, logf func(string), tail int) (string, error) {
	if tail <= 0 {
		tail = 20
	}
	if logf == nil {
		logf = func(string) {}
	}
	var (
		last                 []string
		partial              string
		step, steps          int
		instruction, imageID string
		shortID              string
		dec                  = json.NewDecoder(r)
	)
	emit := func(line string) {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			return
		}
		if m := stepLine.FindStringSubmatch(line); m != nil {
			step, _ = strconv.Atoi(m[1])
			steps, _ = strconv.Atoi(m[2])
			instruction = m[3]
		}
		if m := successfullyBuiltLine.FindStringSubmatch(line); m != nil {
			shortID = m[1]
		}
		if len(last) == tail {
			last = append(last[:0], last[1:]...)
		}
		last = append(last, line)
		logf(line)
	}
	flush := func() {
		if partial != "" {
			emit(partial)
			partial = ""
		}
	}
	for {
		var m buildMessage
		err := dec.Decode(&m)
		if err == io.EOF {
			break
		}
		if err != nil {
			flush()
			return "", errcode.Errorf(errcode.Unavailable, "reading the build log from the engine: %v", err)
		}
		if m.Stream != "" {
			partial += m.Stream
			for {
				i := strings.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				emit(partial[:i])
				partial = partial[i+1:]
			}
		}
		if m.Status != "" {
			flush()
			if m.ID != "" {
				emit(m.ID + ": " + m.Status)
			} else {
				emit(m.Status)
			}
		}
		if m.Error != "" || m.ErrorDetail != nil {
			flush()
			msg := m.Error
			if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			be := &image.BuildError{Step: step, Steps: steps, Instruction: instruction, Message: msg,
				LastLines: append([]string(nil), last...), Code: errcode.InvalidArgument}
			if isPullFailure(instruction, msg) {
				be.Code = errcode.Unavailable
			}
			return "", be
		}
		if len(m.Aux) > 0 {
			var aux struct {
				ID string `json:"ID"`
			}
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				imageID = aux.ID
			}
		}
	}
	flush()
	if imageID == "" && shortID != "" {
		imageID = shortID
	}
	if imageID == "" {
		return "", errcode.Errorf(errcode.Internal, "the engine ended the build without an image ID or an error; last lines: %s", strings.Join(last, " | "))
	}
	return imageID, nil
}

// isPullFailure reports whether a failure of instruction is the base image
// not being available (no registry, unknown image) rather than a broken
// step.
func isPullFailure(instruction, msg string) bool {
	if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(instruction)), "FROM") {
		return false
	}
	msg = strings.ToLower(msg)
	for _, s := range []string{"pull", "manifest", "registry", "no such host", "dial tcp", "lookup", "not found", "timeout"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
