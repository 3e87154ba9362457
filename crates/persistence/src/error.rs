//! The one error type of this crate.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What went wrong in the database layer. The api crate maps `NotFound` to 404, `Conflict` to
/// 409, `Unavailable` to 503 and the rest to 500 (after logging the cause).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist (for commands that need it to).
    #[error("{0} not found")]
    NotFound(String),
    /// The change contradicts what is stored (a duplicate name, a finished job…).
    #[error("{0}")]
    Conflict(String),
    /// No connection could be had in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The connection broke (the server restarted or went away). Reads are retried on
    /// another connection; for writes the outcome is unknown.
    #[error("database connection lost: {0}")]
    ConnectionLost(String),
    /// A query failed for another reason.
    #[error("database error while {context}: {source}")]
    Query {
        context: &'static str,
        #[source]
        source: DieselError,
    },
    /// A stored value the code cannot read (a status outside the three, a bad timestamp).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Opening or migrating the database failed.
    #[error("{0}")]
    Setup(String),
}

impl StoreError {
    /// Wraps a diesel error with what we were doing; connection-level failures become
    /// `Unavailable`, unique violations `Conflict`.
    pub(crate) fn query(context: &'static str) -> impl FnOnce(DieselError) -> StoreError {
        move |source| match &source {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => StoreError::ConnectionLost(format!("{context}: {}", info.message())),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict(format!("{context}: already exists"))
            }
            DieselError::DatabaseError(_, info) if is_busy(info.message()) => {
                StoreError::Unavailable(format!("{context}: {}", info.message()))
            }
            _ => StoreError::Query { context, source },
        }
    }

    /// A `Conflict` (a unique violation) said as `message`; any other error as it is.
    pub(crate) fn conflict_says(self, message: impl FnOnce() -> String) -> StoreError {
        match self {
            StoreError::Conflict(_) => StoreError::Conflict(message()),
            other => other,
        }
    }

    /// `Ok` for an insert that met a unique violation: the row is there already.
    pub(crate) fn already_there(inserted: Result<usize, StoreError>) -> Result<(), StoreError> {
        match inserted {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// True when the connection that produced this error should not be reused.
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::ConnectionLost(_)
        )
    }
}

/// SQLite's "database is locked"/"busy" after `busy_timeout`: a transient overload.
fn is_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

/// Errors inside `conn.transaction(…)` closures.
impl From<DieselError> for StoreError {
    fn from(source: DieselError) -> Self {
        StoreError::query("running a transaction")(source)
    }
}
