//! Errors as users see them: an HTTP status, a stable `code`, and a message that says
//! what to do. Both the admin API and the data plane answer with this JSON shape:
//! `{"error": {"code": "function_not_found", "message": "..."}}`.

use glint_runtime::{ComponentError, InvokeError, ManifestError};
use glint_store::StoreError;
use http::StatusCode;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds to send in `Retry-After`, for 503s and 429s.
    pub retry_after: Option<u32>,
    /// The quota refused, for `quota_exceeded`.
    pub quota: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            quota: None,
        }
    }

    /// `403 quota_exceeded`, naming the quota: a deploy or write past what the tenant
    /// may have.
    pub fn quota(quota: &'static str, message: impl Into<String>) -> Self {
        Self {
            quota: Some(quota),
            ..Self::new(StatusCode::FORBIDDEN, "quota_exceeded", message)
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// A failure inside the node whose text (a SQLite message, a path, an I/O error) is
    /// not for clients: it goes to the node's log under an incident id, and the client
    /// gets the id and a stable code.
    pub fn hidden(what: &str, detail: impl std::fmt::Display) -> Self {
        let incident = uuid::Uuid::now_v7().simple().to_string();
        let incident = &incident[incident.len() - 12..];
        tracing::error!(incident, error = %detail, "{what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what} (incident {incident}); the node's log has the details"),
        )
    }

    /// The error as an HTTP response: its status, `Retry-After` when set, and the JSON.
    pub fn json_response(&self) -> http::Response<http_body_util::Full<bytes::Bytes>> {
        let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
            self.body_json(),
        )));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        resp
    }

    pub fn body_json(&self) -> String {
        match self.quota {
            Some(quota) => serde_json::json!({
                "error": { "code": self.code, "message": self.message, "quota": quota }
            }),
            None => serde_json::json!({ "error": { "code": self.code, "message": self.message } }),
        }
        .to_string()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::FunctionNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "function_not_found", e.to_string())
            }
            StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::InvalidName(m) => ApiError::bad_request("invalid_name", m),
            StoreError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            StoreError::Limit(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "limit_exceeded", m)
            }
            StoreError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "region_unreachable", m)
            }
            StoreError::Backend(m) => {
                let mut e = ApiError::hidden("the node's storage failed", m);
                e.code = "storage_error";
                e
            }
        }
    }
}

impl From<ManifestError> for ApiError {
    fn from(e: ManifestError) -> Self {
        ApiError::bad_request("invalid_manifest", e.to_string())
    }
}

impl From<ComponentError> for ApiError {
    fn from(e: ComponentError) -> Self {
        let code = match &e {
            ComponentError::Empty => "empty_component",
            ComponentError::NotWasm => "not_wasm",
            ComponentError::CoreModule => "not_a_component",
            ComponentError::Invalid(_) => "invalid_component",
            ComponentError::NoHttpHandler(_) => "missing_http_handler",
            ComponentError::UnsupportedImport(_) => "unsupported_import",
            ComponentError::NotReusable => "not_reusable",
            ComponentError::ConcurrencyOfWasi02 => "not_concurrent",
            ComponentError::Cache(_) => {
                return ApiError::hidden("the node cannot write its compile cache", e);
            }
        };
        ApiError::bad_request(code, e.to_string())
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        let (status, code) = match &e {
            InvokeError::CpuLimit(_) => (StatusCode::GATEWAY_TIMEOUT, "cpu_limit_exceeded"),
            InvokeError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "function_timeout"),
            InvokeError::MemoryLimit(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "memory_limit_exceeded")
            }
            InvokeError::Trap(_) => (StatusCode::INTERNAL_SERVER_ERROR, "function_trapped"),
            InvokeError::NoResponse => (StatusCode::BAD_GATEWAY, "no_response"),
            InvokeError::GuestError(_) => (StatusCode::BAD_GATEWAY, "function_error"),
            InvokeError::Instantiate(_) => (StatusCode::SERVICE_UNAVAILABLE, "instantiate_failed"),
            InvokeError::NoInstanceSlot(_) => {
                let mut busy = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "at_capacity",
                    e.to_string(),
                );
                busy.retry_after = Some(1);
                return busy;
            }
        };
        // Trap details carry a wasm backtrace; the response gets the first line only, and
        // the function's log has the whole of it.
        let message = e.to_string();
        let first = message.lines().next().unwrap_or_default();
        ApiError::new(
            status,
            code,
            format!("{first} (see `glint logs` for details)"),
        )
    }
}
