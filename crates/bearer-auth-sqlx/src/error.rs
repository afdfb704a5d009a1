//! A database failure: the operation it broke, and its cause.

use std::{error::Error as StdError, fmt, time::Duration};

use crate::Engine;

/// Why a database operation failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The database, the connection or the pool answered an error.
    Sql(sqlx::Error),
    /// No answer within the store's query timeout (a connection from the pool included).
    TimedOut(Duration),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql(error)
    }
}

/// A database failure, with the operation it broke: the source of
/// [`StoreError::Backend`](bearer_auth::StoreError::Backend) and
/// [`Rejection::Unavailable`](bearer_auth::Rejection::Unavailable).
#[derive(Debug)]
pub(crate) struct BackendError {
    pub(crate) operation: &'static str,
    pub(crate) engine: Engine,
    pub(crate) failure: Failure,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Failure::Sql(source) => {
                write!(f, "{} failed on {}: {source}", self.operation, self.engine)
            }
            Failure::TimedOut(after) => write!(
                f,
                "{} failed on {}: no answer within the query timeout ({after:?})",
                self.operation, self.engine
            ),
        }
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.failure {
            Failure::Sql(source) => Some(source),
            Failure::TimedOut(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_says_so_and_how_long() {
        let error = BackendError {
            operation: "token lookup",
            engine: Engine::Postgres,
            failure: Failure::TimedOut(Duration::from_secs(2)),
        };
        assert_eq!(
            error.to_string(),
            "token lookup failed on postgres: no answer within the query timeout (2s)"
        );
        assert!(error.source().is_none());
    }

    #[test]
    fn a_sql_error_is_the_source() {
        let error = BackendError {
            operation: "revoke",
            engine: Engine::MySql,
            failure: Failure::Sql(sqlx::Error::PoolTimedOut),
        };
        assert!(error.to_string().starts_with("revoke failed on mysql: "));
        assert!(error.source().is_some());
    }
}
