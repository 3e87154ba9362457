//! Jobs (`async_status` rows) and the rules for changing them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The state of a job. Serialized as Traffic Ops spells it: `PENDING`, `SUCCEEDED`, `FAILED`;
/// read only from a string of those (through [`FromStr`]), so any other value is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", try_from = "String")]
pub enum JobStatus {
    /// The job has started and not finished.
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

/// One job record: Traffic Ops' columns plus `last_updated`, the time of the last change
/// (creation, heartbeat or finish), which drives staleness, `ETag` and `Last-Modified`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncStatus {
    pub id: i64,
    pub status: JobStatus,
    pub message: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
}

/// What a producer asks for in `PUT async_status/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    pub status: JobStatus,
    pub message: Option<String>,
}

impl JobUpdate {
    /// The `end_time` this update sets: `now` when it finishes the job, none for a heartbeat.
    pub fn end_time(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.status.is_final().then_some(now)
    }
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
        };
        assert_eq!(heartbeat.end_time(now), None);
        for done in [JobStatus::Succeeded, JobStatus::Failed] {
            let finish = JobUpdate {
                status: done,
                message: None,
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
    fn abandoned_message_says_since_when() {
        let since = DateTime::parse_from_rfc3339("2021-02-18T17:13:56.352261Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let text = abandoned_message(since);
        assert!(text.starts_with("Abandoned"), "{text}");
        assert!(text.contains("2021-02-18T17:13:56.352261Z"), "{text}");
    }
}
