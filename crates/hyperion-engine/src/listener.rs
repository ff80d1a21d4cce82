//! Binding and accepting: TCP (IPv4/IPv6) and Unix-domain listeners.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::ListenSpec;

/// A bound, listening socket, not yet registered with a runtime (so it can be created on the
/// caller's thread and errors reported synchronously).
pub enum BoundListener {
    Tcp(std::net::TcpListener, SocketAddr),
    /// `remove_on_close`: the engine created the socket file, so it removes it when it stops.
    Unix {
        listener: std::os::unix::net::UnixListener,
        path: PathBuf,
        remove_on_close: bool,
    },
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
                Ok(BoundListener::Unix {
                    listener: socket.into(),
                    path: path.clone(),
                    remove_on_close: true,
                })
            }
            ListenSpec::Fd { fd } => Self::from_fd(*fd),
        }
    }

    /// Adopts a duplicate of a listening socket the caller owns.
    fn from_fd(fd: RawFd) -> io::Result<Self> {
        // SAFETY: fcntl only reads its integer arguments; an invalid `fd` fails with EBADF.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a descriptor this call just created and nothing else owns.
        let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(dup) });
        let not_listening = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} is not a listening stream socket"),
            )
        };
        if socket.r#type()? != Type::STREAM {
            return Err(not_listening());
        }
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        if !socket.is_listener()? {
            return Err(not_listening());
        }
        // O_NONBLOCK belongs to the open file, so this also affects the caller's descriptor
        // (and other processes sharing it), which only ever accept without blocking too.
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        if let Some(addr) = local.as_socket() {
            Ok(BoundListener::Tcp(socket.into(), addr))
        } else if local.is_unix() {
            let path = local
                .as_pathname()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            Ok(BoundListener::Unix {
                listener: socket.into(),
                path,
                remove_on_close: false,
            })
        } else {
            Err(not_listening())
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
                admin_only: false,
            },
            BoundListener::Unix { .. } => crate::exchange::ListenerInfo {
                server_name: "localhost".into(),
                server_port: 0,
                scheme: "http",
                admin_only: false,
            },
        }
    }

    pub fn local_port(&self) -> Option<u16> {
        match self {
            BoundListener::Tcp(_, addr) => Some(addr.port()),
            BoundListener::Unix { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BoundListener::Tcp(_, SocketAddr::V6(a)) => format!("http://[{}]:{}", a.ip(), a.port()),
            BoundListener::Tcp(_, a) => format!("http://{a}"),
            BoundListener::Unix { path, .. } => format!("unix://{}", path.display()),
        }
    }
}

/// A bound listener and what it serves.
pub(crate) struct Listening {
    pub(crate) bound: BoundListener,
    /// Only the admin endpoints (`AdminConfig::listen`).
    pub(crate) admin_only: bool,
}

impl Listening {
    pub(crate) fn info(&self) -> crate::exchange::ListenerInfo {
        crate::exchange::ListenerInfo {
            admin_only: self.admin_only,
            ..self.bound.info()
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
