package scoring

import "syscall"

// killGroup kills what is left of the process group pgid (the processes a
// worker forked) after the worker itself has exited. The kernel does not
// reuse a pid while it names a live process group, so this cannot hit an
// unrelated group.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
