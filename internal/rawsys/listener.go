//go:build unix || windows

package rawsys

import "net"

// Listener hands out the TCP connections its Listener accepts as *Conn;
// any other connection as it is.
type Listener struct{ net.Listener }

// Accept accepts the next connection.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := NewConn(tc)
	if err != nil {
		return c, nil
	}
	return rc, nil
}
