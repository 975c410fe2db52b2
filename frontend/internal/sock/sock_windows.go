package sock

// PeerQuiet cannot look at a Windows socket without blocking, so it reports
// every idle connection as quiet: a replica that closed a kept-alive
// connection is found when the request's write or the answer's read fails,
// and the request is retried only if it provably never left.
func PeerQuiet(fd uintptr) bool { return true }
