// Package sockio gives the gateway's sockets reads and writes that do not
// hand their P to another thread.
//
// A Go read or write enters the scheduler's syscall state. When the runtime's
// monitor thread sees a goroutine still in a syscall on its next tick (20µs
// or more), it takes the P away and wakes another thread to run it; the
// syscall's thread must then win a P back. Reads and writes on non-blocking
// sockets never sleep in the kernel, but on loopback a write carries the
// receiver's whole TCP path and often outlasts a tick on a busy machine. The
// hand-offs then cost the gateway about as much CPU as its own work.
//
// Wrap returns a net.Conn whose Read and Write make the read(2) and write(2)
// calls as raw system calls inside the connection's RawConn, which waits for
// readiness on the runtime's network poller as net.Conn does, with the same
// deadlines. Everything else goes to the wrapped connection. Race-detector
// builds use the syscall package's calls instead, whose annotations let the
// detector see a socket write happen before the read of its bytes. On systems
// other than Linux, Wrap returns the connection unchanged.
package sockio
