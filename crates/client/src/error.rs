//! Client errors: what the server said, or why it could not be asked.

use accord_model::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        details: Option<serde_json::Value>,
    },
    /// The server could not be reached or the connection broke. Holds the
    /// whole cause chain, so one Display shows why.
    #[error("reach the Accord server: {0}")]
    Transport(String),
    /// The server answered with something that is not the expected JSON.
    #[error("read the server's answer ({status}): {reason}")]
    Decode { status: u16, reason: String },
    #[error("invalid server URL: {0}")]
    BaseUrl(String),
}

impl ClientError {
    pub(crate) fn transport(err: reqwest::Error) -> Self {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        Self::Transport(text)
    }

    pub(crate) fn from_body(status: u16, bytes: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => Self::Api {
                status,
                code: body.error.code,
                message: body.error.message,
                details: body.error.details,
            },
            Err(_) => Self::Decode {
                status,
                reason: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            },
        }
    }

    /// The machine code of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth trying again later: the server was unreachable, overloaded or
    /// its database was down.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Api { status, .. } | Self::Decode { status, .. } => {
                matches!(status, 429 | 502 | 503 | 504)
            }
            Self::BaseUrl(_) => false,
        }
    }
}
