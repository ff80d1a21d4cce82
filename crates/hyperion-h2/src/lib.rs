//! HTTP/2 without I/O: the bytes a server reads go in, events and the bytes to write come out.

pub mod conn;
pub mod frame;
pub mod hpack;
mod huffman;

pub use conn::{Config, ConnError, Connection, Event, Fields, Gone, RawHead, RequestHead, PREFACE};
pub use frame::Reason;
