// Package childproc starts helper processes (Python workers, control-plane
// binaries, benchmark servers) so that they do not outlive the process that
// started them, and kills them with whatever they started in turn.
package childproc
