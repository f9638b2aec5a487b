//! Storage errors, classified so callers can answer 503 for an outage and
//! 500 for a bug.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; the operation may succeed later.
    #[error("reach the database: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A row could not be decoded into the model: a bug or a corrupt row.
    #[error("decode a stored {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// Any other database error.
    #[error("run a database statement: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A value no backend can keep (PostgreSQL text cannot hold NUL), refused
    /// by both alike before any statement runs.
    #[error("store {what}: it holds the NUL character, which text cannot hold")]
    Unstorable { what: &'static str },
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    pub(crate) fn corrupt(what: &'static str, reason: impl ToString) -> Self {
        Self::Corrupt {
            what,
            reason: reason.to_string(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => Self::Unavailable(err),
            sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => Self::Unavailable(err),
            _ => Self::Database(err),
        }
    }
}

/// SQLite's BUSY/LOCKED codes and PostgreSQL's connection, shutdown and
/// recovery classes mean "try again later", not "bug".
fn is_busy(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            matches!(
                code,
                "5" | "6" | "261" | "517" | "57P01" | "57P02" | "57P03"
            ) || code.starts_with("08")
        }
        None => false,
    }
}
