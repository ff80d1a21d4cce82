//! Binding and accepting: TCP (IPv4/IPv6) and Unix-domain listeners.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ListenSpec;

/// A bound, listening socket, not yet registered with a runtime (so it can be created on the
/// caller's thread and errors reported synchronously).
pub enum BoundListener {
    Tcp(std::net::TcpListener, SocketAddr),
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

impl BoundListener {
    pub fn bind(spec: &ListenSpec, backlog: i32) -> io::Result<Self> {
        match spec {
            ListenSpec::Tcp { host, port } => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let addr = (host, *port).to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("cannot resolve {host}"),
                    )
                })?;
                let socket =
                    Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
                socket.set_reuse_address(true)?;
                if addr.is_ipv6() {
                    // "::" means IPv6 only here, like nginx; bind 0.0.0.0 for IPv4.
                    socket.set_only_v6(true)?;
                }
                socket.set_nonblocking(true)?;
                socket.bind(&addr.into())?;
                socket.listen(backlog)?;
                let listener: std::net::TcpListener = socket.into();
                let local = listener.local_addr()?;
                Ok(BoundListener::Tcp(listener, local))
            }
            ListenSpec::Unix { path } => {
                remove_stale_socket(path)?;
                let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                socket.set_nonblocking(true)?;
                socket.bind(&socket2::SockAddr::unix(path)?)?;
                socket.listen(backlog)?;
                Ok(BoundListener::Unix(socket.into(), path.clone()))
            }
        }
    }

    /// The facts every request on this listener carries.
    pub fn info(&self) -> crate::exchange::ListenerInfo {
        match self {
            BoundListener::Tcp(_, addr) => crate::exchange::ListenerInfo {
                server_name: match addr.ip() {
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                },
                server_port: addr.port(),
                scheme: "http",
            },
            BoundListener::Unix(..) => crate::exchange::ListenerInfo {
                server_name: "localhost".into(),
                server_port: 0,
                scheme: "http",
            },
        }
    }

    pub fn local_port(&self) -> Option<u16> {
        match self {
            BoundListener::Tcp(_, addr) => Some(addr.port()),
            BoundListener::Unix(..) => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BoundListener::Tcp(_, SocketAddr::V6(a)) => format!("http://[{}]:{}", a.ip(), a.port()),
            BoundListener::Tcp(_, a) => format!("http://{a}"),
            BoundListener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }
}

/// A leftover socket file from a previous run would make bind fail; anything else at that path
/// is not ours to delete.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by another server", path.display()),
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
