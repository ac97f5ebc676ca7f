//! Sockets from other loopback addresses: other clients, as far as the master can tell.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};

/// 127.0.0.N: every one of them is loopback on Linux.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A TCP connection to `addr` from the local address `from`.
pub fn connect_from(from: IpAddr, addr: &str) -> TcpStream {
    use rustix::net::{bind, connect, socket_with, AddressFamily, SocketFlags, SocketType};
    let to: SocketAddr = addr.parse().expect("an address");
    // Close-on-exec: a master or worker another test starts meanwhile must not inherit it.
    let fd =
        socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None).expect("a socket");
    bind(&fd, &SocketAddr::new(from, 0)).expect("binding");
    connect(&fd, &to).expect("connecting");
    TcpStream::from(fd)
}

/// A connection attempt to `addr` from `from` that never waits: the socket is
/// non-blocking, so a master whose backlog is full (out of descriptors) cannot stall
/// the test; the connection completes or not, and holds its place either way.
pub fn flood_from(from: IpAddr, addr: &str) -> rustix::fd::OwnedFd {
    use rustix::net::{bind, connect, socket_with, AddressFamily, SocketFlags, SocketType};
    let to: SocketAddr = addr.parse().expect("an address");
    // Close-on-exec: a master started by another test meanwhile (under a 1024-file
    // limit) inherited a flood's 1300 sockets and could not open its database.
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = socket_with(AddressFamily::INET, SocketType::STREAM, flags, None).expect("a socket");
    bind(&fd, &SocketAddr::new(from, 0)).expect("binding");
    match connect(&fd, &to) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => fd,
        Err(e) => panic!("connecting to {addr}: {e}"),
    }
}
