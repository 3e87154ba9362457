//! Jobs (`async_status` rows) and the rules for changing them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::{validate_message, ValidationError};

/// The state of a job. Serialized as Traffic Ops spells it: `PENDING`, `SUCCEEDED`, `FAILED`;
/// read only from a string of those (through [`FromStr`]), so any other value is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", try_from = "String")]
pub enum JobStatus {
    /// The job has started and not finished.
    #[default]
    Pending,
    /// The job finished successfully. Final.
    Succeeded,
    /// The job finished with an error (or was abandoned). Final.
    Failed,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 3] = [JobStatus::Pending, JobStatus::Succeeded, JobStatus::Failed];

    /// The wire and database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
        }
    }

    /// True for `SUCCEEDED` and `FAILED`: a finished job never changes again.
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Pending)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is none of `PENDING`, `SUCCEEDED`, `FAILED`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a job status; expected one of PENDING, SUCCEEDED, FAILED")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    /// Exact, case-sensitive match, as Traffic Ops stores them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl TryFrom<String> for JobStatus {
    type Error = UnknownStatus;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A job's labels: string pairs given at creation (see [`validate_labels`]), in key order.
pub type Labels = BTreeMap<String, String>;

/// How far a job has got: `done` of `total` steps, `0 <= done <= total`, `total >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: i64,
    pub total: i64,
}

impl Progress {
    /// The progress if it keeps the rules.
    pub fn new(done: i64, total: i64) -> Result<Progress, ValidationError> {
        if total >= 1 && (0..=total).contains(&done) {
            Ok(Progress { done, total })
        } else {
            Err(ValidationError::Progress)
        }
    }
}

/// One job record: Traffic Ops' columns, `last_updated` (the time of the last change:
/// creation, heartbeat, cancel request or finish, which drives staleness, `ETag` and
/// `Last-Modified`), and the lifecycle of issue 14.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AsyncStatus {
    pub id: i64,
    pub status: JobStatus,
    pub message: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    /// What sort of job (see [`validate_kind`]).
    pub kind: Option<String>,
    pub labels: Labels,
    /// The username that created the job.
    pub created_by: Option<String>,
    pub progress: Option<Progress>,
    /// When the reaper fails the job whatever its heartbeats.
    pub deadline: Option<DateTime<Utc>>,
    /// Seconds without an update after which the reaper fails the job, instead of
    /// `jobs.stale_after`.
    pub heartbeat_timeout: Option<i64>,
    pub cancel_requested: bool,
    pub cancel_reason: Option<String>,
    pub cancel_requested_by: Option<String>,
}

/// What a producer gives to start a job, validated (see [`NewJob::check`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewJob {
    pub message: Option<String>,
    pub kind: Option<String>,
    pub labels: Labels,
    /// The single-flight key: while a `PENDING` job has it, no other job is created with it.
    pub key: Option<String>,
    /// The username of the creator.
    pub created_by: Option<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub heartbeat_timeout: Option<i64>,
}

impl NewJob {
    /// Checks the message, kind, labels and key; the text names the field.
    pub fn check(&self) -> Result<(), (&'static str, ValidationError)> {
        if let Some(m) = &self.message {
            validate_message(m).map_err(|e| ("message", e))?;
        }
        if let Some(k) = &self.kind {
            validate_kind(k).map_err(|e| ("kind", e))?;
        }
        validate_labels(&self.labels).map_err(|e| ("labels", e))?;
        if let Some(k) = &self.key {
            validate_key(k).map_err(|e| ("key", e))?;
        }
        Ok(())
    }
}

/// What a producer asks for in `PUT async_status/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    pub status: JobStatus,
    pub message: Option<String>,
    /// `None` keeps the stored progress.
    pub progress: Option<Progress>,
}

impl JobUpdate {
    /// The `end_time` this update sets: `now` when it finishes the job, none for a heartbeat.
    pub fn end_time(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.status.is_final().then_some(now)
    }
}

/// A request to cancel a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// Who asks.
    pub by: String,
    pub reason: Option<String>,
    /// Finish the job as `FAILED` at once instead of asking its producer.
    pub force: bool,
}

impl CancelRequest {
    /// The message of a job finished by a forced cancel.
    pub fn message(&self) -> String {
        match &self.reason {
            Some(reason) => format!("cancelled by {}: {reason}", self.by),
            None => format!("cancelled by {}", self.by),
        }
    }
}

/// Longest cancel reason, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;

/// A cancel reason: at most [`MAX_REASON_BYTES`], no NUL.
pub fn validate_reason(reason: &str) -> Result<(), ValidationError> {
    (reason.len() <= MAX_REASON_BYTES && !reason.contains('\0'))
        .then_some(())
        .ok_or(ValidationError::Reason)
}

/// A job kind: 1–64 characters of `a-z 0-9 . _ -`.
pub fn validate_kind(kind: &str) -> Result<(), ValidationError> {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    (!kind.is_empty() && kind.len() <= 64 && kind.chars().all(ok))
        .then_some(())
        .ok_or(ValidationError::Kind)
}

/// Most labels a job may have.
pub const MAX_LABELS: usize = 16;
/// Longest label value, in characters.
pub const MAX_LABEL_VALUE_CHARS: usize = 256;

/// A label key: 1–64 characters of `A-Z a-z 0-9 . _ / -`.
pub fn validate_label_key(key: &str) -> Result<(), ValidationError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._/-".contains(c);
    (!key.is_empty() && key.len() <= 64 && key.chars().all(ok))
        .then_some(())
        .ok_or(ValidationError::LabelKey)
}

/// A label value: at most 256 characters, none of them NUL.
pub fn validate_label_value(value: &str) -> Result<(), ValidationError> {
    (value.chars().count() <= MAX_LABEL_VALUE_CHARS && !value.contains('\0'))
        .then_some(())
        .ok_or(ValidationError::LabelValue)
}

/// At most [`MAX_LABELS`] pairs, each key and value valid.
pub fn validate_labels(labels: &Labels) -> Result<(), ValidationError> {
    if labels.len() > MAX_LABELS {
        return Err(ValidationError::Labels);
    }
    for (key, value) in labels {
        validate_label_key(key)?;
        validate_label_value(value)?;
    }
    Ok(())
}

/// A single-flight key: 1–200 characters, no control character.
pub fn validate_key(key: &str) -> Result<(), ValidationError> {
    let count = key.chars().count();
    ((1..=200).contains(&count) && !key.chars().any(char::is_control))
        .then_some(())
        .ok_or(ValidationError::Key)
}

/// Why an update may not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The job already finished; finished jobs never change.
    #[error("async status is already {0} and can no longer be changed")]
    AlreadyFinished(JobStatus),
}

/// May a job currently in `current` take `update`? Only a `PENDING` job changes: to
/// `PENDING` (a heartbeat), `SUCCEEDED` or `FAILED`.
pub fn check_transition(current: JobStatus, _update: &JobUpdate) -> Result<(), TransitionError> {
    if current.is_final() {
        Err(TransitionError::AlreadyFinished(current))
    } else {
        Ok(())
    }
}

/// The message a job gets when the reaper fails it at its deadline.
pub fn deadline_message(deadline: DateTime<Utc>) -> String {
    format!(
        "Deadline passed: the job had to finish by {}.",
        deadline.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

/// The message a job gets when the reaper fails it for lack of updates since `since`.
pub fn abandoned_message(since: DateTime<Utc>) -> String {
    format!(
        "Abandoned: no update since {} (the job's producer stopped reporting).",
        since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_spelling() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
    }

    #[test]
    fn status_parsing_is_exact() {
        for bad in ["pending", "Pending", "DONE", "", " PENDING", "PENDING "] {
            assert_eq!(bad.parse::<JobStatus>(), Err(UnknownStatus(bad.into())));
        }
    }

    #[test]
    fn only_pending_jobs_change() {
        let update = |status| JobUpdate {
            status,
            message: None,
            progress: None,
        };
        for to in JobStatus::ALL {
            assert_eq!(check_transition(JobStatus::Pending, &update(to)), Ok(()));
            for done in [JobStatus::Succeeded, JobStatus::Failed] {
                assert_eq!(
                    check_transition(done, &update(to)),
                    Err(TransitionError::AlreadyFinished(done))
                );
            }
        }
    }

    #[test]
    fn finishing_sets_end_time_and_heartbeat_does_not() {
        let now = Utc::now();
        let heartbeat = JobUpdate {
            status: JobStatus::Pending,
            message: None,
            progress: None,
        };
        assert_eq!(heartbeat.end_time(now), None);
        for done in [JobStatus::Succeeded, JobStatus::Failed] {
            let finish = JobUpdate {
                status: done,
                message: None,
                progress: None,
            };
            assert_eq!(finish.end_time(now), Some(now));
        }
    }

    #[test]
    fn conflict_text_names_the_final_status() {
        assert_eq!(
            TransitionError::AlreadyFinished(JobStatus::Failed).to_string(),
            "async status is already FAILED and can no longer be changed"
        );
    }

    #[test]
    fn progress_keeps_its_bounds() {
        assert_eq!(Progress::new(0, 1), Ok(Progress { done: 0, total: 1 }));
        assert_eq!(Progress::new(3, 3), Ok(Progress { done: 3, total: 3 }));
        for (done, total) in [(0, 0), (-1, 3), (4, 3), (1, -1)] {
            assert_eq!(Progress::new(done, total), Err(ValidationError::Progress));
        }
    }

    #[test]
    fn kinds_labels_and_keys() {
        for ok in ["acme", "dnssec.refresh", "a-b_c.9", &"k".repeat(64)] {
            assert_eq!(validate_kind(ok), Ok(()), "{ok}");
        }
        for bad in ["", "ACME", "a b", "a/b", &"k".repeat(65)] {
            assert_eq!(validate_kind(bad), Err(ValidationError::Kind), "{bad}");
        }
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            validate_labels(&labels(&[("cdn", "cdn1"), ("a/B.c-d_e", "")])),
            Ok(())
        );
        assert_eq!(
            validate_labels(&labels(&[("", "x")])),
            Err(ValidationError::LabelKey)
        );
        assert_eq!(
            validate_labels(&labels(&[("a:b", "x")])),
            Err(ValidationError::LabelKey)
        );
        let long = "é".repeat(257);
        assert_eq!(
            validate_labels(&labels(&[("a", &long)])),
            Err(ValidationError::LabelValue)
        );
        assert_eq!(validate_labels(&labels(&[("a", &long[..512])])), Ok(()));
        let many: Labels = (0..17).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(validate_labels(&many), Err(ValidationError::Labels));
        assert_eq!(validate_key("renew cdn1"), Ok(()));
        for bad in ["", "a\nb", &"k".repeat(201)] {
            assert_eq!(validate_key(bad), Err(ValidationError::Key));
        }
    }

    #[test]
    fn forced_cancel_message_names_the_user_and_reason() {
        let mut cancel = CancelRequest {
            by: "ops".into(),
            reason: Some("wrong cdn".into()),
            force: true,
        };
        assert_eq!(cancel.message(), "cancelled by ops: wrong cdn");
        cancel.reason = None;
        assert_eq!(cancel.message(), "cancelled by ops");
    }

    #[test]
    fn abandoned_message_says_since_when() {
        let since = DateTime::parse_from_rfc3339("2021-02-18T17:13:56.352261Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let text = abandoned_message(since);
        assert!(text.starts_with("Abandoned"), "{text}");
        assert!(text.contains("2021-02-18T17:13:56.352261Z"), "{text}");
    }
}
