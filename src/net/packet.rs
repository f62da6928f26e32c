//! Link-layer announcements (gratuitous ARP, unsolicited NA) on an `AF_PACKET` socket.
//! The frames are built by `crate::proto`; this only puts them on the wire.

use std::io;

use socket2::{Domain, Socket, Type};

use super::{sys, NetError};

/// An `AF_PACKET` / `SOCK_RAW` socket bound to one interface, for sending whole
/// Ethernet frames. It is opened with protocol 0, so it receives nothing.
#[derive(Debug)]
pub struct FrameSender {
    sock: Socket,
    ifindex: u32,
}

impl FrameSender {
    /// Opens the socket and binds it to `ifindex`.
    pub fn open(ifindex: u32) -> Result<Self, NetError> {
        let ifname = format!("interface index {ifindex}");
        let err = |op: &'static str| {
            let ifname = ifname.clone();
            move |source: io::Error| match source.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => NetError::NeedsCapNetRaw {
                    what: "a packet socket",
                },
                Some(libc::ENODEV) => NetError::NoSuchInterface(ifname),
                _ => NetError::Socket { op, ifname, source },
            }
        };
        // Protocol 0: no frame is ever queued for reading on this socket.
        let sock =
            Socket::new(Domain::PACKET, Type::RAW, None).map_err(err("opening a packet socket"))?;
        // Non-blocking: a full send queue drops the announcement (reported as an error)
        // rather than stalling the runtime thread.
        sock.set_nonblocking(true)
            .map_err(err("setting O_NONBLOCK"))?;
        sys::bind_packet(&sock, ifindex, 0).map_err(err("binding the packet socket"))?;
        Ok(FrameSender { sock, ifindex })
    }

    /// Sends one complete Ethernet frame (destination MAC first). Never blocks: when
    /// the socket's send queue is full the error is `WouldBlock` and the frame is not
    /// sent.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let n = self.sock.send(frame)?;
        if n == frame.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "sent {n} of {} bytes on interface index {}",
                    frame.len(),
                    self.ifindex
                ),
            ))
        }
    }

    /// Sends several complete Ethernet frames with as few system calls as the kernel
    /// allows (`sendmmsg`). Never blocks. Returns how
    /// many frames went out, in order; when that is fewer than `frames.len()`, the error
    /// says why the next one did not.
    pub fn send_batch(&self, frames: &[&[u8]]) -> (usize, Option<io::Error>) {
        let msgs: Vec<(&[u8], Option<&socket2::SockAddr>)> =
            frames.iter().map(|f| (*f, None)).collect();
        let (sent, e) = sys::send_batch(&self.sock, &msgs);
        let e = e.map(|e| match e.kind() {
            io::ErrorKind::WriteZero => io::Error::new(
                io::ErrorKind::WriteZero,
                format!("{e} on interface index {}", self.ifindex),
            ),
            _ => e,
        });
        (sent, e)
    }

    /// The interface index this sender is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}
