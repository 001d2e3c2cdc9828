// Package sdnotify tells systemd about pecetd's state with the sd_notify
// protocol (sd_notify(3)): one datagram of "KEY=value" lines to the
// AF_UNIX socket named by $NOTIFY_SOCKET. With Type=notify in the unit,
// systemd counts pecetd as started only once it has sent READY=1, that is
// once the token is logged in and both listeners accept connections.
//
// It is a few lines of the standard library rather than a dependency on
// go-systemd; it does nothing (and reports so) when $NOTIFY_SOCKET is unset,
// as it is outside systemd.
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// States pecetd sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state to $NOTIFY_SOCKET. It returns false, nil when the
// variable is unset. A name starting with "@" is a Linux abstract socket.
func Notify(state string) (bool, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	// The net package maps a leading "@" to the abstract namespace's NUL,
	// as systemd means it.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	return true, nil
}
