//! `Hyperion::Native::Input`: a request body that is still arriving (gRPC over HTTP/2). The
//! Ruby side (`Hyperion::StreamInput`) builds `read`, `gets` and `each` on `next_chunk`.

use hyperion_engine::{BodyStream, InputError, Read};
use magnus::value::Lazy;
use magnus::{Error, ExceptionClass, Module, RModule, RString, Ruby};

use crate::gvl;

#[magnus::wrap(class = "Hyperion::Native::Input", free_immediately, size)]
pub struct Input {
    stream: BodyStream,
}

static INPUT_ERROR: Lazy<ExceptionClass> = Lazy::new(|ruby| {
    ruby.class_object()
        .const_get::<_, RModule>("Hyperion")
        .and_then(|m| m.const_get::<_, RModule>("Native"))
        .and_then(|m| m.const_get("InputError"))
        .expect("defined by init")
});

impl Input {
    pub fn new(stream: BodyStream) -> Self {
        Input { stream }
    }

    /// The next bytes as they arrived (a binary String), or nil at the end of the body.
    /// Waits with the GVL released; Thread#kill, signals and shutdown get through. Raises
    /// `Hyperion::Native::InputError` (an IOError) if the client reset the stream, the body
    /// outgrew `max_body_bytes`, nothing arrived for `max_request_read_seconds`, or the input
    /// was closed.
    fn next_chunk(ruby: &Ruby, rb_self: &Self) -> Result<Option<RString>, Error> {
        let stream = &rb_self.stream;
        loop {
            stream.arm();
            let got = gvl::without_gvl(|| stream.next(), || stream.interrupt());
            match got {
                Some(Ok(Read::Data(bytes))) => return Ok(Some(ruby.str_from_slice(&bytes))),
                Some(Ok(Read::Eof)) => return Ok(None),
                Some(Err(e)) => return Err(input_error(ruby, e)),
                Some(Ok(Read::Interrupted)) | None => ruby.thread_check_ints()?,
            }
        }
    }

    /// The rest of the body is not needed: what arrived is dropped and the client's further
    /// DATA is no longer read.
    fn close(&self) {
        self.stream.close();
    }
}

fn input_error(ruby: &Ruby, e: InputError) -> Error {
    Error::new(ruby.get_inner(&INPUT_ERROR), e.to_string())
}

pub fn init(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native.define_error("InputError", ruby.exception_io_error())?;
    let class = native.define_class("Input", ruby.class_object())?;
    class.define_method("next_chunk", magnus::method!(Input::next_chunk, 0))?;
    class.define_method("close", magnus::method!(Input::close, 0))?;
    Ok(())
}
