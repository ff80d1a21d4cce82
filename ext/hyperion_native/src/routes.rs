//! The process-wide route table behind `Hyperion::Server.handle_static`, `.handle` and the page
//! cache. Every engine started in the process serves from it; forked workers inherit it.

use std::sync::{Arc, LazyLock};

use hyperion_engine::routes::{Method, RouteTable, StaticResponse};
use magnus::prelude::*;
use magnus::{Error, RHash, RString, Ruby, Value};

pub static ROUTES: LazyLock<Arc<RouteTable>> = LazyLock::new(|| Arc::new(RouteTable::new()));

/// A copy of a String's bytes.
fn bytes(s: RString) -> Vec<u8> {
    // SAFETY: copied at once, before any Ruby code can run.
    unsafe { s.as_slice().to_vec() }
}

fn method(ruby: &Ruby, name: String) -> Result<Method, Error> {
    Method::parse(&name).ok_or_else(|| {
        Error::new(
            ruby.exception_arg_error(),
            format!("unsupported method {name:?} (GET POST PUT DELETE HEAD PATCH OPTIONS)"),
        )
    })
}

/// Header name and value bytes.
type Header = (Vec<u8>, Vec<u8>);

fn header_pairs(ruby: &Ruby, headers: RHash) -> Result<Vec<Header>, Error> {
    let mut pairs = Vec::new();
    headers.foreach(|name: Value, value: Value| {
        let name = RString::try_convert(name)?;
        let name = bytes(name);
        match RString::from_value(value) {
            Some(v) => pairs.push((name, bytes(v))),
            None => {
                return Err(Error::new(
                    ruby.exception_arg_error(),
                    format!(
                        "header {:?} must be a String",
                        String::from_utf8_lossy(&name)
                    ),
                ))
            }
        }
        Ok(magnus::r_hash::ForEach::Continue)
    })?;
    Ok(pairs)
}

/// `Native.add_static_route(method, path, status, headers, body)`
pub fn add_static_route(
    ruby: &Ruby,
    method_name: String,
    path: RString,
    status: i64,
    headers: RHash,
    body: RString,
) -> Result<(), Error> {
    let method = method(ruby, method_name)?;
    let pairs = header_pairs(ruby, headers)?;
    let status = u16::try_from(status).unwrap_or(0);
    let response = StaticResponse::new(status, &pairs, bytes(body))
        .map_err(|e| Error::new(ruby.exception_arg_error(), e.to_string()))?;
    ROUTES.add_static(method, &bytes(path), response);
    Ok(())
}

/// `Native.add_handler_route(method, path, id)`
pub fn add_handler_route(
    ruby: &Ruby,
    method_name: String,
    path: RString,
    id: u32,
) -> Result<(), Error> {
    let method = method(ruby, method_name)?;
    ROUTES.add_handler(method, &bytes(path), id);
    Ok(())
}

/// `Native.add_page_cache_file(url_path, file_path, content_type, immutable)`: the file's size.
pub fn add_page_cache_file(
    ruby: &Ruby,
    url_path: RString,
    file: String,
    content_type: RString,
    immutable: bool,
) -> Result<u64, Error> {
    ROUTES
        .add_file(
            &bytes(url_path),
            std::path::Path::new(&file),
            &bytes(content_type),
            immutable,
        )
        .map_err(|e| Error::new(ruby.exception_io_error(), format!("{file}: {e}")))
}

/// Request hooks registered: static hits go through an application thread too.
pub fn observe_routes(observed: bool) {
    ROUTES.set_observed(observed);
}
