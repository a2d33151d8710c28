//! What a PostgreSQL failure means for the caller: its kind, and a message that names the
//! database and says what to do.

use std::fmt;

use tokio_postgres::error::SqlState;

use crate::error::{Error, StorageError, StorageErrorKind};

/// Where in a call a failure happened, which decides what a lost connection means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Before anything was written (connecting, reading, the first statements of a commit): a
    /// lost connection wrote nothing.
    Before,
    /// While the `COMMIT` was on its way or being answered: the commit may or may not have
    /// happened.
    Committing,
}

/// A storage error for a failed PostgreSQL call while doing `action` on the database `label`.
pub(super) fn pg_error(
    label: &str,
    action: impl fmt::Display,
    stage: Stage,
    e: tokio_postgres::Error,
) -> Error {
    let (kind, hint) = classify(&e, stage);
    let detail = describe(&e);
    StorageError::new(
        kind,
        format!("{action}: {detail} (PostgreSQL database {label}){hint}"),
    )
    .caused_by(e)
    .into()
}

/// The server's message (with its detail) or the client's.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

fn classify(e: &tokio_postgres::Error, stage: Stage) -> (StorageErrorKind, &'static str) {
    use StorageErrorKind as K;
    if let Some(code) = e.code() {
        return match code {
            c if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::LOCK_NOT_AVAILABLE =>
            {
                (K::Busy, "; retrying may succeed")
            }
            c if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::QUERY_CANCELED =>
            {
                match stage {
                    Stage::Before => (
                        K::Unavailable,
                        "; nothing was written, and retrying may succeed",
                    ),
                    Stage::Committing => (
                        K::OutcomeUnknown,
                        "; the commit may or may not have been stored, and retrying the same unit is safe",
                    ),
                }
            }
            c if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                (
                    K::Other,
                    "; check the user and password of the URL, and the server's pg_hba.conf",
                )
            }
            c if *c == SqlState::INVALID_CATALOG_NAME => (
                K::Other,
                "; create the database, or name another one in the URL",
            ),
            c if *c == SqlState::INSUFFICIENT_PRIVILEGE => (
                K::Other,
                "; the user needs the right to create tables in the schema, and to read and write them",
            ),
            c if *c == SqlState::UNTRANSLATABLE_CHARACTER
                || *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                || *c == SqlState::INVALID_TEXT_REPRESENTATION
                || *c == SqlState::INVALID_PARAMETER_VALUE =>
            {
                (K::InvalidRequest, "; nothing was written")
            }
            c if *c == SqlState::DISK_FULL
                || *c == SqlState::OUT_OF_MEMORY
                || *c == SqlState::TOO_MANY_CONNECTIONS =>
            {
                (K::Unavailable, "; retrying later may succeed")
            }
            _ => (K::Other, ""),
        };
    }
    // No answer from the server: the connection is gone, or never came up.
    match stage {
        Stage::Before => (
            K::Unavailable,
            "; is the server running and reachable? Nothing was written, and retrying may succeed",
        ),
        Stage::Committing => (
            K::OutcomeUnknown,
            "; the connection was lost while the commit ran, so it may or may not have been stored; retrying the same unit is safe",
        ),
    }
}

/// Is this the failure of a unique index (a version or an event id taken by another writer)?
pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Is this a failure worth repeating the whole transaction for (a deadlock or serialization
/// failure, which PostgreSQL reports instead of waiting forever)?
pub(super) fn is_transient(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// A URL with its password (if any) replaced, for messages.
pub(super) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // key=value form: drop a password=... pair.
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.to_ascii_lowercase().starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!(
                "{}{masked}{}",
                &url[..scheme_end + 3],
                &url[scheme_end + 3 + at..]
            )
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/events"),
            "postgres://app:***@db:5432/events"
        );
        assert_eq!(
            redact("postgres://app@db/events"),
            "postgres://app@db/events"
        );
        assert_eq!(
            redact("postgresql://db/events?x=1"),
            "postgresql://db/events?x=1"
        );
        assert_eq!(
            redact("host=db user=app password=s3cret dbname=events"),
            "host=db user=app password=*** dbname=events"
        );
    }
}
