//! One request and the means to answer it: what an I/O thread hands an application thread.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyperion_http::RequestHead;

use crate::input::BodyStream;
use crate::response::Response;
use crate::routes::StaticResponse;

/// Who is on the other end of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A Unix-domain socket peer has no address of its own.
    Unix,
}

/// Facts about the listener a request arrived on, shared by all its connections.
#[derive(Debug)]
pub struct ListenerInfo {
    /// Fallback SERVER_NAME when the request carries no Host (HTTP/1.0).
    pub server_name: String,
    /// Fallback SERVER_PORT, also used when Host has no port.
    pub server_port: u16,
    /// "http" or "https".
    pub scheme: &'static str,
    /// Serves only the admin endpoints (`AdminConfig::listen`).
    pub admin_only: bool,
}

/// The protocol a request arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// An HTTP/2 stream; `https` is its `:scheme`.
    Http2 {
        https: bool,
    },
}

/// A request body: read completely before dispatch, or (gRPC over HTTP/2) read by the
/// application while it arrives.
#[derive(Debug)]
pub enum Body {
    Memory(Vec<u8>),
    /// Larger than `max_in_memory_body_bytes`: an unlinked temp file, positioned at its start.
    File {
        file: std::fs::File,
        len: u64,
    },
    /// Still arriving: the application reads it from here (its length is unknown, so `len`
    /// says 0).
    Stream(BodyStream),
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(bytes) => bytes.len() as u64,
            Body::File { len, .. } => *len,
            Body::Stream(_) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when the body is in memory.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Body::Memory(bytes) => Some(bytes),
            Body::File { .. } | Body::Stream(_) => None,
        }
    }
}

/// What the request matched in the route table, if anything.
#[derive(Clone)]
pub enum Direct {
    /// Nothing: the Rack application answers.
    None,
    /// A `handle` route: the handler with this id answers.
    Handler(u32),
    /// A static route whose hit must pass an application thread because request hooks are
    /// registered; answered with [`crate::Response::encode_static`].
    Static {
        response: Arc<StaticResponse>,
        head_only: bool,
    },
}

pub struct Exchange {
    pub head: RequestHead,
    /// The bytes `head`'s spans point into.
    pub head_bytes: Bytes,
    /// The request body: already read (and de-chunked), or still arriving.
    pub body: Body,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
    /// HTTP/1.x, or an HTTP/2 stream whose head was assembled as an HTTP/1.1 head so the env
    /// is built the same way.
    pub protocol: Protocol,
    pub peer: Peer,
    pub listener: Arc<ListenerInfo>,
    pub response: Response,
    pub direct: Direct,
}

impl Exchange {
    pub fn method(&self) -> &[u8] {
        self.head.method.slice(&self.head_bytes)
    }

    pub fn path(&self) -> &[u8] {
        self.head.path.slice(&self.head_bytes)
    }

    /// `rack.url_scheme`: the listener's, or an HTTP/2 stream's `:scheme`.
    pub fn scheme(&self) -> &'static str {
        match self.protocol {
            Protocol::Http1 => self.listener.scheme,
            Protocol::Http2 { https: true } => "https",
            Protocol::Http2 { https: false } => "http",
        }
    }

    pub fn is_h2(&self) -> bool {
        matches!(self.protocol, Protocol::Http2 { .. })
    }
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("method", &String::from_utf8_lossy(self.method()))
            .field("path", &String::from_utf8_lossy(self.path()))
            .field("peer", &self.peer)
            .finish()
    }
}
