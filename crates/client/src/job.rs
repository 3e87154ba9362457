//! A job as the API sends it, and the ids and `Location`s that name one.

use asyncstatus_domain::JobStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One job as `GET async_status/{id}` answers it. Traffic Ops' Go server drops null keys and
/// writes times in the database session's offset; both are accepted (times are kept in UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub status: JobStatus,
    pub start_time: DateTime<Utc>,
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The job id named by `text`: a decimal id (`42`), a `Location` path
/// (`/api/4.0/async_status/42`) or a URL ending in one (`https://to.example.net/api/4.0/async_status/42`).
pub fn job_id_of(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let invalid = || {
        format!(
            "'{text}' is not a job id or a job's location (like 42 or /api/4.0/async_status/42)"
        )
    };
    let id = match text.rsplit_once("/async_status/") {
        Some((_, id)) => id.trim_end_matches('/'),
        None if text.contains('/') => return Err(invalid()),
        None => text,
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    id.parse().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_locations_name_a_job() {
        assert_eq!(job_id_of("42"), Ok(42));
        assert_eq!(job_id_of("/api/4.0/async_status/42"), Ok(42));
        assert_eq!(
            job_id_of("https://to.example.net/api/5.0/async_status/7/"),
            Ok(7)
        );
        for bad in [
            "",
            "abc",
            "-1",
            "1.5",
            "/api/4.0/async_status/",
            "/api/4.0/users/3",
            "99999999999999999999",
        ] {
            assert!(job_id_of(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn traffic_ops_answers_without_null_keys_and_with_offsets_are_read() {
        let job: Job = serde_json::from_str(
            r#"{"id":3,"status":"PENDING","start_time":"2021-02-18T12:13:56.30262-05:00"}"#,
        )
        .unwrap();
        assert_eq!(job.end_time, None);
        assert_eq!(job.message, None);
        assert_eq!(
            job.start_time.to_rfc3339(),
            "2021-02-18T17:13:56.302620+00:00"
        );
    }
}
