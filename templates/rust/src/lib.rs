//! {{name}}: a Glint function in Rust.
//!
//! `handle` answers each request; `glint::http_handler!` makes it the standard
//! `wasi:http/incoming-handler`, so the component runs unchanged under Glint or
//! `wasmtime serve`.

use glint::{IntoResponse, Request};

fn handle(req: Request) -> impl IntoResponse {
    // Lines on stdout land in `glint logs`; a prefix such as "ERROR:" sets the level.
    println!("{{name}}: {}", req.uri().path());
    // [env] values in glint.toml, read through wasi:config.
    let greeting = glint::config::get("GREETING").ok().flatten();
    let greeting = greeting.as_deref().unwrap_or("Hello");
    format!("{greeting} from {{name}} (Rust)!\n")
}

glint::http_handler!(handle);
