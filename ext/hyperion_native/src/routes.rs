//! The process-wide route table behind `Hyperion::Server.handle_static`, `.handle` and the page
//! cache. Every engine started in the process serves from it; forked workers inherit it.

use std::sync::{Arc, LazyLock};

use hyperion_engine::routes::{Method, RouteTable, StaticResponse};
use hyperion_engine::HeadBuilder;
use magnus::{Error, RArray, RHash, RString, Ruby, TryConvert};

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
    let arg_error =
        |e: hyperion_engine::ResponseError| Error::new(ruby.exception_arg_error(), e.to_string());
    let mut head = HeadBuilder::dated_at_send(status, 256).map_err(arg_error)?;
    crate::add_headers(ruby, &mut head, headers)?;
    let response = StaticResponse::from_head(head, bytes(body)).map_err(arg_error)?;
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

/// `Native.add_page_cache_file(url_paths, file_path, content_type, immutable)`: the file's
/// size. Every URL path in the Array serves the same entry.
pub fn add_page_cache_file(
    ruby: &Ruby,
    url_paths: RArray,
    file: String,
    content_type: RString,
    immutable: bool,
) -> Result<u64, Error> {
    let paths = url_paths
        .into_iter()
        .map(|path| RString::try_convert(path).map(bytes))
        .collect::<Result<Vec<_>, Error>>()?;
    let paths: Vec<&[u8]> = paths.iter().map(Vec::as_slice).collect();
    ROUTES
        .add_file(
            &paths,
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
