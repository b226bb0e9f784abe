//! Write Glint functions in Rust. A function is a plain `fn(Request) -> impl IntoResponse`
//! exported with [`http_handler!`]; the crate turns it into a standard
//! `wasi:http/incoming-handler` component, so it also runs under `wasmtime serve` or any
//! other host that offers the same WASI interfaces.
//!
//! The parts, one module each, all blocking (a function handles one request at a time):
//! - the handler glue (`handler`): a `wasi:http` request in, an [`http::Request`] to your
//!   function, its [`IntoResponse`] back out;
//! - [`kv`]: the function's KV stores (`wasi:keyvalue`), declared in glint.toml's `[kv] stores`;
//! - [`config`]: configuration values and granted secrets (`wasi:config/store`);
//! - [`fetch`] and [`get`]: outbound HTTP (`wasi:http/outgoing-handler`), allowed by
//!   glint.toml's `[outbound]` section.
//!
//! ```no_run
//! fn handle(req: glint::Request) -> impl glint::IntoResponse {
//!     let greeting = glint::config::get("GREETING").ok().flatten();
//!     format!("{} {}\n", greeting.as_deref().unwrap_or("Hello"), req.uri().path())
//! }
//!
//! glint::http_handler!(handle);
//! ```

mod bindings;
pub mod config;
mod convert;
mod handler;
pub mod kv;
mod outbound;

/// The `http` crate, whose types requests and responses are made of.
pub use http;

pub use handler::IntoResponse;
pub use outbound::{ErrorCode, FetchError, fetch, get};

/// A request as the handler sees it: the path (with query) is relative to the function's
/// route, and the body has been read in full.
pub type Request = http::Request<Vec<u8>>;

/// A response: the handler's answer, or what [`fetch`] got back.
pub type Response = http::Response<Vec<u8>>;

/// Exports `handler`, a `fn(glint::Request) -> impl glint::IntoResponse`, as the component's
/// `wasi:http/incoming-handler`. Use it once per crate.
///
/// ```no_run
/// fn handle(_req: glint::Request) -> &'static str {
///     "Hello from Glint!\n"
/// }
///
/// glint::http_handler!(handle);
/// ```
#[macro_export]
macro_rules! http_handler {
    ($handler:path) => {
        const _: () = {
            struct GlintHttpHandler;

            impl $crate::__private::Guest for GlintHttpHandler {
                fn handle(
                    request: $crate::__private::IncomingRequest,
                    response_out: $crate::__private::ResponseOutparam,
                ) {
                    $crate::__private::serve(request, response_out, $handler);
                }
            }

            $crate::__private::wasi::http::proxy::export!(
                GlintHttpHandler with_types_in $crate::__private::wasi
            );
        };
    };
}

/// What [`http_handler!`] expands to needs; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::handler::serve;
    pub use wasi;
    pub use wasi::exports::http::incoming_handler::Guest;
    pub use wasi::http::types::{IncomingRequest, ResponseOutparam};
}
