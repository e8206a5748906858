//! The one table from errors to HTTP status, JSON error code and WebSocket close code.
//!
//! Every error a client can see is an [`ApiError`]: over HTTP it renders as
//! `{"error":{"code":"…","message":"…"}}` with the status from [`Code::status`]; over WebSocket
//! as a reply error or a close frame with [`Code::close_code`]. Messages say what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use tidings_core::{BrokerError, HubError};

/// Every error code of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadChannel,
    BadCursor,
    BadRequest,
    BadJson,
    UnknownOp,
    BadCallback,
    BadEvent,
    Unauthorized,
    Forbidden,
    NotFound,
    TransportDisabled,
    PayloadTooLarge,
    TooManySubscriptions,
    SlowConsumer,
    BrokerUnavailable,
    ShuttingDown,
}

impl Code {
    /// The table. One row per code: (wire code, HTTP status, WebSocket close code).
    const fn row(self) -> (&'static str, u16, u16) {
        match self {
            Code::BadChannel => ("bad_channel", 400, 4400),
            Code::BadCursor => ("bad_cursor", 400, 4400),
            Code::BadRequest => ("bad_request", 400, 4400),
            Code::BadJson => ("bad_json", 400, 4400),
            Code::UnknownOp => ("unknown_op", 400, 4400),
            Code::BadCallback => ("bad_callback", 400, 4400),
            Code::BadEvent => ("bad_event", 400, 4400),
            Code::Unauthorized => ("unauthorized", 401, 4401),
            Code::Forbidden => ("forbidden", 403, 4403),
            Code::NotFound => ("not_found", 404, 4404),
            Code::TransportDisabled => ("transport_disabled", 404, 4404),
            Code::PayloadTooLarge => ("payload_too_large", 413, 1009),
            Code::TooManySubscriptions => ("too_many_subscriptions", 429, 4429),
            Code::SlowConsumer => ("slow_consumer", 503, 4408),
            Code::BrokerUnavailable => ("broker_unavailable", 503, 1013),
            Code::ShuttingDown => ("shutting_down", 503, 1001),
        }
    }

    /// The wire code, e.g. `bad_channel`.
    pub const fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.row().1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The WebSocket close code.
    pub const fn close_code(self) -> u16 {
        self.row().2
    }

    /// Maps a protocol decoder's code string back to the table.
    pub fn from_wire(code: &str) -> Code {
        match code {
            "bad_channel" => Code::BadChannel,
            "bad_cursor" => Code::BadCursor,
            "bad_json" => Code::BadJson,
            "unknown_op" => Code::UnknownOp,
            "bad_event" => Code::BadEvent,
            _ => Code::BadRequest,
        }
    }
}

/// An error as a client sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let mut b = BytesMut::new();
        b.extend_from_slice(b"{\"error\":{\"code\":\"");
        b.extend_from_slice(self.code.as_str().as_bytes());
        b.extend_from_slice(b"\",\"message\":");
        tidings_protocol::json::write_str(&mut b, &self.message);
        b.extend_from_slice(b"}}");
        String::from_utf8_lossy(&b).into_owned()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.code.status(), self.body()).into_response();
        res.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        res
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Broker(b) => b.into(),
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Unavailable(_) => ApiError::new(Code::BrokerUnavailable, e.to_string()),
            BrokerError::TooLarge(_) => ApiError::new(Code::PayloadTooLarge, e.to_string()),
        }
    }
}

impl From<tidings_protocol::ChannelError> for ApiError {
    fn from(e: tidings_protocol::ChannelError) -> Self {
        ApiError::new(Code::BadChannel, e.to_string())
    }
}

impl From<tidings_protocol::CursorError> for ApiError {
    fn from(e: tidings_protocol::CursorError) -> Self {
        ApiError::new(Code::BadCursor, e.to_string())
    }
}

/// The fallback for unknown paths.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        Code::NotFound,
        format!(
            "no route for {}; see docs/protocol.md for the endpoints",
            uri.path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_distinct_and_json_is_exact() {
        let e = ApiError::new(Code::BadChannel, "has \"x\"");
        assert_eq!(
            e.body(),
            r#"{"error":{"code":"bad_channel","message":"has \"x\""}}"#
        );
        assert_eq!(
            Code::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(Code::SlowConsumer.close_code(), 4408);
        assert_eq!(Code::from_wire("unknown_op"), Code::UnknownOp);
    }
}
