//! The client's one error type: what went wrong, with the server's alert text when it sent one.

/// Why a request (or a wait) did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service answered with an error status; `text` is its error alerts' text (or the
    /// start of its body when it sent no alerts).
    #[error("{method} {url}: {status}: {text}")]
    Api {
        method: &'static str,
        url: String,
        status: u16,
        text: String,
    },
    /// No answer: connection refused or reset, DNS, TLS, a timeout — after the retries.
    #[error("{method} {url}: the service is unreachable: {detail}")]
    Unreachable {
        method: &'static str,
        url: String,
        detail: String,
    },
    /// The service's TLS certificate was refused (not retried: it will not change by itself).
    #[error("{method} {url}: the TLS certificate was refused: {detail} (--ca-cert FILE trusts a certificate; --insecure skips the check)")]
    Tls {
        method: &'static str,
        url: String,
        detail: String,
    },
    /// An answer that is not what the API sends (no JSON, no `access_token` cookie, …).
    #[error("{method} {url}: unexpected answer: {detail}")]
    InvalidResponse {
        method: &'static str,
        url: String,
        detail: String,
    },
    /// The client was set up wrongly (bad URL, unreadable CA certificate, …).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of an [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when asking again later may succeed: no answer, or 502/503/504 (and 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// `error: cause: cause…` — reqwest's own Display hides the cause (e.g. "Connection refused").
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}
