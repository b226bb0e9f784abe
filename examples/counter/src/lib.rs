//! The counter function: named counters in the KV store `counters`.
//!
//! - `POST /<key>` adds one to the counter `<key>` and answers with its new value;
//! - `GET /<key>` answers with its value, 0 if it was never counted.
//!
//! The path `/` is the counter `hits`. Answers are text, one number and a newline.

use glint::Request;
use glint::http::{Method, StatusCode};
use glint::kv::{self, Store};

type Failure = (StatusCode, String);

fn handle(req: Request) -> Result<String, Failure> {
    let key = match req.uri().path().trim_start_matches('/') {
        "" => "hits",
        key => key,
    };
    let store = Store::open("counters").map_err(kv_failure)?;
    let count = match *req.method() {
        // One atomic step on the host, so concurrent requests never lose a count.
        Method::POST => store.increment(key, 1).map_err(kv_failure)?,
        Method::GET => match store.get_str(key).map_err(kv_failure)? {
            None => 0,
            Some(text) => text.parse::<i64>().map_err(|_| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("counter {key:?} holds {text:?}, not a number\n"),
                )
            })?,
        },
        _ => {
            return Err((
                StatusCode::METHOD_NOT_ALLOWED,
                "use GET or POST\n".to_string(),
            ));
        }
    };
    Ok(format!("{count}\n"))
}

fn kv_failure(e: kv::Error) -> Failure {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("kv error: {e}\n"),
    )
}

glint::http_handler!(handle);
