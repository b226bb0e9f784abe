//! {{name}}: a Glint function, a standard `wasi:http/incoming-handler`.
//! It runs unchanged under Glint or `wasmtime serve`.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Handler;

impl Guest for Handler {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        // Lines on stdout land in `glint logs`; a prefix such as "ERROR:" sets the level.
        println!("{{name}}: {path}");

        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
            .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("stream");
        stream
            .blocking_write_and_flush(b"Hello from {{name}} (Rust)!\n")
            .expect("write");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish");
    }
}

wasi::http::proxy::export!(Handler);
