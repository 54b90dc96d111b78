package nstest

import (
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/shoalhq/shoal/overlay/nsrun"
)

// Serve starts, inside the namespace at ns, a TCP listener on tcpAddr and
// a UDP socket on udpAddr (both "IP:PORT"). Each accepted connection is
// handed to onConn on its own goroutine and closed when onConn returns;
// each datagram is handed to onDatagram with its sender, and what that
// returns is sent back (nothing when it returns nil). Both sockets are
// closed, and Serve waits for every handler, in tb.Cleanup: a handler
// must not block forever (set a deadline on the connection). Serve fails
// the test if either socket cannot be opened.
func Serve(tb testing.TB, ns, tcpAddr, udpAddr string, onConn func(net.Conn), onDatagram func(req []byte, from *net.UDPAddr) []byte) {
	tb.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := nsrun.Do(ns, func() (err error) {
		if ln, err = net.Listen("tcp4", tcpAddr); err != nil {
			return err
		}
		if pc, err = net.ListenPacket("udp4", udpAddr); err != nil {
			_ = ln.Close()
		}
		return err
	})
	if err != nil {
		tb.Fatalf("start servers on tcp %s and udp %s in %s: %v", tcpAddr, udpAddr, ns, err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		_ = ln.Close()
		_ = pc.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				onConn(c)
			})
		}
	})
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply := onDatagram(buf[:n], from.(*net.UDPAddr)); reply != nil {
				_, _ = pc.WriteTo(reply, from)
			}
		}
	})
}

// IsTimeout reports whether err is a deadline or timeout, as opposed to
// a refusal or another failure.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
