//! Binding the listen addresses so that one default, `[::]:PORT`, works in
//! IPv4-only, IPv6-only and dual-stack pods.
//!
//! An unspecified IPv6 address is bound as a dual-stack socket with
//! `IPV6_V6ONLY` off explicitly, so IPv4 clients get in (as IPv4-mapped
//! addresses) even on hosts whose `net.ipv6.bindv6only` is 1. A host without
//! IPv6 (kernel booted with `ipv6.disable=1`, or IPv6 switched off on every
//! interface) cannot open or bind that socket: keyward then listens on
//! `0.0.0.0:PORT` and says so. Any other address is bound as given.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr},
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Binds `addr` for a server (see the module doc for `[::]`).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    if !(addr.is_ipv6() && addr.ip().is_unspecified()) {
        return TcpListener::bind(addr).await;
    }
    match dual_stack(addr) {
        Ok(listener) => Ok(listener),
        Err(Fallback::NoIpv6(error)) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::warn!(%addr, listen = %v4, %error, "this host has no IPv6; listening on IPv4 only");
            TcpListener::bind(v4).await
        }
        Err(Fallback::Other(error)) => Err(error),
    }
}

enum Fallback {
    /// The host cannot do IPv6 at all: IPv4 alone is the right answer.
    NoIpv6(io::Error),
    /// IPv6 works but this address cannot be bound (in use, no permission).
    Other(io::Error),
}

fn dual_stack(addr: SocketAddr) -> Result<TcpListener, Fallback> {
    let socket =
        Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)).map_err(Fallback::NoIpv6)?;
    let other = Fallback::Other;
    socket.set_only_v6(false).map_err(Fallback::NoIpv6)?;
    // As tokio's own bind does on Unix: a restart need not wait for
    // TIME_WAIT connections of the previous process.
    #[cfg(unix)]
    socket.set_reuse_address(true).map_err(other)?;
    socket.bind(&addr.into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrNotAvailable {
            Fallback::NoIpv6(e)
        } else {
            Fallback::Other(e)
        }
    })?;
    socket.listen(1024).map_err(other)?;
    socket.set_nonblocking(true).map_err(other)?;
    TcpListener::from_std(socket.into()).map_err(other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_unspecified_ipv6_address_takes_ipv4_and_ipv6() {
        let listener = bind("[::]:0".parse().unwrap()).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut clients = vec![tokio::net::TcpStream::connect(("127.0.0.1", port))];
        // Where the host has IPv6, it must answer on it too.
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            assert!(listener.local_addr().unwrap().is_ipv6());
            clients.push(tokio::net::TcpStream::connect(("::1", port)));
        }
        for client in clients {
            let (connected, accepted) = tokio::join!(client, listener.accept());
            connected.unwrap();
            accepted.unwrap();
        }
    }

    #[tokio::test]
    async fn other_addresses_are_bound_as_given() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_eq!(
            listener.local_addr().unwrap().ip(),
            std::net::IpAddr::from(Ipv4Addr::LOCALHOST)
        );
    }

    #[tokio::test]
    async fn an_address_in_use_is_an_error_not_a_fallback() {
        let taken = bind("[::]:0".parse().unwrap()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        if addr.is_ipv6() {
            let error = bind(addr).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        }
    }
}
