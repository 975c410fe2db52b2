// Package spill keeps large bodies out of the router's memory: a request
// body (or the part of an answer a slow caller has not taken yet) is
// written to an unlinked temporary file as it arrives and read back from
// it, and an Allowance bounds the bytes in such files at once over the
// whole router (Options.MaxSpillBytes), so that callers cannot fill the
// disk. nginx buffers large bodies the same way (client_body_buffer_size,
// then a temporary file).
package spill
