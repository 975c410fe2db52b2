// Package rawsys reads and writes non-blocking descriptors with read(2)
// and write(2) made directly, without the runtime's bookkeeping for a
// system call that might block: handing the thread's processor to another
// thread and, after an idle spell, waking the runtime's monitor thread
// (sysmon), which then polls every 20 µs for a while. A call on a
// non-blocking descriptor never blocks, so that bookkeeping has nothing to
// do. Callers wait for readiness through the runtime's poller
// (syscall.RawConn), which keeps deadlines and Close working.
//
// Under the race detector Read and Write are syscall.Read and
// syscall.Write, which tell the detector about the ordering that I/O
// implies.
package rawsys
