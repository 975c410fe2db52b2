// Package errcode is the small set of error codes every aksml package returns.
//
// Each code is a sentinel error. Errors returned by aksml wrap exactly one code,
// so callers branch with errors.Is:
//
//	if errors.Is(err, errcode.NotFound) { ... }
//
// and read the code with Of. Messages name the field, the value and the rule
// that was broken; the code says what kind of failure it is.
package errcode

import (
	"errors"
	"fmt"
)

// Code is one of the error codes below. It implements error so that it can be
// wrapped and matched with errors.Is.
type Code struct{ name string }

func (c *Code) Error() string { return c.name }

// String returns the code's name, such as "NotFound".
func (c *Code) String() string { return c.name }

// The codes. Their meaning follows the gRPC codes of the same names.
var (
	// NotFound: the named thing (model, service, target, version) does not exist.
	NotFound = &Code{"NotFound"}
	// AlreadyExists: a thing with that name exists and creation is not idempotent.
	AlreadyExists = &Code{"AlreadyExists"}
	// InvalidArgument: input breaks a validation rule; the message names field, value and rule.
	InvalidArgument = &Code{"InvalidArgument"}
	// FailedPrecondition: the system is not in a state that allows the call
	// (deleting a model a service uses, deleting the default version).
	FailedPrecondition = &Code{"FailedPrecondition"}
	// Conflict: another operation on the same object is in progress.
	Conflict = &Code{"Conflict"}
	// Unauthenticated: a missing, wrong, expired or foreign key or token.
	Unauthenticated = &Code{"Unauthenticated"}
	// ResourceExhausted: no capacity (unschedulable replicas, overloaded service, limits).
	ResourceExhausted = &Code{"ResourceExhausted"}
	// Unavailable: the backend or replica cannot serve now; retrying may help.
	Unavailable = &Code{"Unavailable"}
	// DeadlineExceeded: an operation or request ran out of time.
	DeadlineExceeded = &Code{"DeadlineExceeded"}
	// Unimplemented: the backend does not support the operation.
	Unimplemented = &Code{"Unimplemented"}
	// Internal: a bug or an unexpected failure of a dependency.
	Internal = &Code{"Internal"}
	// DataLoss: stored data is missing or corrupt (a damaged workspace
	// database, a blob whose content no longer matches its digest). Retrying
	// does not help; the message says what is damaged and how to check or
	// recover it.
	DataLoss = &Code{"DataLoss"}
)

var all = []*Code{NotFound, AlreadyExists, InvalidArgument, FailedPrecondition, Conflict,
	Unauthenticated, ResourceExhausted, Unavailable, DeadlineExceeded, Unimplemented, Internal, DataLoss}

type coded struct {
	code *Code
	err  error
}

func (e *coded) Error() string { return e.err.Error() }

func (e *coded) Unwrap() []error { return []error{e.code, e.err} }

// New returns an error with the given code and message.
func New(code *Code, msg string) error {
	return &coded{code: code, err: errors.New(msg)}
}

// Errorf returns an error with the given code and a formatted message; %w in
// format wraps as fmt.Errorf does, so the cause stays reachable.
func Errorf(code *Code, format string, args ...any) error {
	return &coded{code: code, err: fmt.Errorf(format, args...)}
}

// Wrap attaches code to err, keeping err reachable with errors.Is and
// errors.As. It returns nil when err is nil. If err already carries a code,
// the new code is added in front and Of reports it.
func Wrap(code *Code, err error) error {
	if err == nil {
		return nil
	}
	return &coded{code: code, err: err}
}

// Of returns the first code err carries, or nil if it carries none.
func Of(err error) *Code {
	if err == nil {
		return nil
	}
	var c *coded
	if errors.As(err, &c) {
		return c.code
	}
	for _, code := range all {
		if errors.Is(err, code) {
			return code
		}
	}
	return nil
}

// Split returns the separate errors of a validation error that joins
// several (errors.Join of coded errors, possibly nested), in order. A
// single error, coded or not, comes back alone; nil gives nil.
func Split(err error) []error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*coded); ok {
		return []error{err}
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, k := range j.Unwrap() {
		out = append(out, Split(k)...)
	}
	return out
}
