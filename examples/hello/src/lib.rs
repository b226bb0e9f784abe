//! The hello function: a plain `wasi:http/incoming-handler` with no SDK.
//!
//! - `/` answers with a greeting (from the `GREETING` env var);
//! - `POST /echo` answers with the request body;
//! - any other path answers with the path and the prefix it was routed under.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), content_type.as_bytes().to_vec())])
        .expect("valid header");
    let resp = OutgoingResponse::new(headers);
    resp.set_status_code(status).expect("valid status");
    let outgoing = resp.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(resp));
    let stream = outgoing.write().expect("stream taken once");
    for chunk in body.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write body");
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish body");
}

fn read_body(req: &IncomingRequest) -> Vec<u8> {
    let mut data = Vec::new();
    let Ok(body) = req.consume() else { return data };
    let Ok(stream) = body.stream() else { return data };
    while let Ok(chunk) = stream.blocking_read(64 * 1024) {
        data.extend_from_slice(&chunk);
    }
    data
}

impl Guest for Hello {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let path = req.path_with_query().unwrap_or_else(|| "/".into());
        let prefix = req
            .headers()
            .get("x-forwarded-prefix")
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        println!("hello: {} {path}", method_name(&req.method()));
        match (req.method(), path.as_str()) {
            (_, "/") => {
                let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
                respond(out, 200, "text/plain", format!("{greeting} from Glint!\n").as_bytes());
            }
            (Method::Post, "/echo") => {
                let body = read_body(&req);
                respond(out, 200, "application/octet-stream", &body);
            }
            _ => respond(out, 200, "text/plain", format!("path={path} prefix={prefix}\n").as_bytes()),
        }
    }
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(s) => s.clone(),
    }
}

wasi::http::proxy::export!(Hello);
