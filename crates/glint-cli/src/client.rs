//! A small client for the admin API: auth, JSON, and errors a user can act on.

use anyhow::{Context, Result, anyhow, bail};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// How a command reaches the admin API. Commands call it only once they need the node,
/// after checking their own arguments, so a wrong argument is what the user hears about
/// first.
pub type Connect<'a> = &'a dyn Fn() -> Result<Client>;

pub struct Client {
    pub base: String,
    key: Option<String>,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, key: Option<String>, ca_cert: Option<&std::path::Path>) -> Result<Self> {
        let mut builder =
            reqwest::Client::builder().user_agent(concat!("glint-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            key,
            http,
        })
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    /// Sends and turns any non-2xx answer into the API's own error message.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response> {
        let resp = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the Glint admin API at {}: {e}\n  is a node running? start one with `glint serve`, or point --url / GLINT_API_URL at it",
                self.base
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let message = parsed
            .as_ref()
            .and_then(|v| v["error"]["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| text.trim().to_string());
        if status == StatusCode::UNAUTHORIZED && self.key.is_none() {
            bail!("{message}\n  no API key given: pass --key or set GLINT_API_KEY");
        }
        bail!("{message} (HTTP {})", status.as_u16())
    }

    pub async fn json(&self, req: RequestBuilder) -> Result<Value> {
        let resp = self.send(req).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        resp.json()
            .await
            .context("the admin API answered with invalid JSON")
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.json(self.request(Method::GET, path)).await
    }
}

/// One Server-Sent Event: its name (`event:`), if any, and its data.
pub struct SseEvent {
    pub name: Option<String>,
    pub data: String,
}

/// The events of a `text/event-stream` response, as they arrive.
pub fn sse_events(resp: Response) -> impl futures_util::Stream<Item = Result<SseEvent>> + Unpin {
    let bytes = resp.bytes_stream();
    Box::pin(futures_util::stream::unfold(
        (bytes, String::new()),
        |(mut bytes, mut buf)| async move {
            use futures_util::StreamExt;
            loop {
                if let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let (mut name, mut data) = (None, Vec::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("data:") {
                            data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                        } else if let Some(v) = line.strip_prefix("event:") {
                            name = Some(v.trim().to_string());
                        }
                    }
                    if data.is_empty() {
                        continue; // a keep-alive comment
                    }
                    let event = SseEvent {
                        name,
                        data: data.join("\n"),
                    };
                    return Some((Ok(event), (bytes, buf)));
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buf.push_str(&String::from_utf8_lossy(&chunk)),
                    Some(Err(e)) => {
                        return Some((Err(anyhow!("the log stream broke: {e}")), (bytes, buf)));
                    }
                    None => return None,
                }
            }
        },
    ))
}
