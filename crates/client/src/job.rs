//! A job as the API sends it, and the ids and `Location`s that name one.

use std::collections::BTreeMap;

use asyncstatus_domain::JobStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One job as `GET async_status/{id}` answers it. Traffic Ops' Go server drops null keys and
/// writes times in the database session's offset; both are accepted (times are kept in UTC).
///
/// The keys after `message` are asyncstatus' own (job lifecycle: kind, labels, owner,
/// progress, deadline, cancel). Traffic Ops and older asyncstatus servers do not send them:
/// each is optional and reads as `None`, `{}` or `false` when absent (or `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub status: JobStatus,
    pub start_time: DateTime<Utc>,
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub message: Option<String>,
    /// What sort of job, given at creation (`acme.renew`).
    #[serde(default)]
    pub kind: Option<String>,
    /// String pairs given at creation (`{"cdn":"cdn1"}`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// The user that created it.
    #[serde(default)]
    pub created_by: Option<String>,
    /// How far it is, as its producer last said.
    #[serde(default)]
    pub progress: Option<Progress>,
    /// When the service fails it if it is still `PENDING`.
    #[serde(default)]
    pub deadline: Option<DateTime<Utc>>,
    /// Seconds without an update after which the service fails it as abandoned (its own
    /// `jobs.stale_after` when `None`).
    #[serde(default)]
    pub heartbeat_timeout: Option<u64>,
    /// Someone asked to cancel it; its producer should stop and finish it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cancel_requested: bool,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub cancel_requested_by: Option<String>,
    /// When it last changed.
    #[serde(default)]
    pub last_updated: Option<DateTime<Utc>>,
}

/// `null` as the type's default (a server may send `"labels": null`).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A job's progress: `done` of `total` steps (`0 <= done <= total`, `total >= 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

impl Progress {
    /// `done` of `total`, or why not.
    pub fn new(done: u64, total: u64) -> Result<Progress, String> {
        if total == 0 {
            return Err(format!(
                "progress {done}/{total}: the total must be at least 1"
            ));
        }
        if done > total {
            return Err(format!(
                "progress {done}/{total}: done must not be more than the total"
            ));
        }
        Ok(Progress { done, total })
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.done, self.total)
    }
}

impl std::str::FromStr for Progress {
    type Err = String;

    /// `N/M`, like `3/10`.
    fn from_str(text: &str) -> Result<Progress, String> {
        let invalid = || format!("'{text}' is not a progress like 3/10");
        let (done, total) = text.trim().split_once('/').ok_or_else(invalid)?;
        let number = |part: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse::<u64>().map_err(|_| invalid())
        };
        Progress::new(number(done)?, number(total)?)
    }
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
        assert_eq!(job.kind, None);
        assert!(job.labels.is_empty());
        assert!(!job.cancel_requested);
        assert_eq!(job.progress, None);
        assert_eq!(job.last_updated, None);
    }

    #[test]
    fn lifecycle_keys_are_read_and_nulls_are_defaults() {
        let job: Job = serde_json::from_str(
            r#"{"id":5,"status":"PENDING","start_time":"2026-12-03T10:00:00Z","end_time":null,
                "message":"renewing","kind":"acme.renew","labels":{"cdn":"cdn1"},
                "created_by":"admin","progress":{"done":1,"total":3},
                "deadline":"2026-12-03T11:00:00Z","heartbeat_timeout":60,
                "cancel_requested":true,"cancel_reason":"not needed",
                "cancel_requested_by":"ops","last_updated":"2026-12-03T10:05:00Z"}"#,
        )
        .unwrap();
        assert_eq!(job.kind.as_deref(), Some("acme.renew"));
        assert_eq!(job.labels.get("cdn").map(String::as_str), Some("cdn1"));
        assert_eq!(job.created_by.as_deref(), Some("admin"));
        assert_eq!(job.progress, Some(Progress { done: 1, total: 3 }));
        assert_eq!(job.heartbeat_timeout, Some(60));
        assert!(job.cancel_requested);
        assert_eq!(job.cancel_reason.as_deref(), Some("not needed"));
        assert_eq!(job.cancel_requested_by.as_deref(), Some("ops"));
        assert!(job.deadline.is_some() && job.last_updated.is_some());

        let job: Job = serde_json::from_str(
            r#"{"id":6,"status":"PENDING","start_time":"2026-12-03T10:00:00Z",
                "labels":null,"cancel_requested":null,"progress":null}"#,
        )
        .unwrap();
        assert!(job.labels.is_empty() && !job.cancel_requested && job.progress.is_none());
    }

    #[test]
    fn progress_is_n_of_m() {
        assert_eq!("3/10".parse(), Ok(Progress { done: 3, total: 10 }));
        assert_eq!(" 0 / 1 ".parse(), Ok(Progress { done: 0, total: 1 }));
        assert_eq!(Progress { done: 2, total: 3 }.to_string(), "2/3");
        for bad in [
            "", "3", "3/", "/3", "4/3", "1/0", "-1/3", "1.5/3", "a/b", "1/2/3",
        ] {
            assert!(bad.parse::<Progress>().is_err(), "{bad:?} accepted");
        }
    }
}
