//go:build !linux

package frontend

// callerGone reports whether the caller hung up while its request is at a
// replica. Only Linux tells this without reading the connection (TCP_INFO);
// elsewhere the HTTPS engine learns it when the answer cannot be written,
// and the replica's slot is held until the answer arrives.
func (c *tlsConn) callerGone() bool { return false }
