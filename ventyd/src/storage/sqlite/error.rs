//! SQLite errors turned into ventyd's: each says what was being done, names the file, and has
//! the kind that tells a caller what to do about it.

use std::fmt;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use crate::error::{Error, StorageError, StorageErrorKind};

/// How long to pause before retrying a write that SQLite refused with `SQLITE_BUSY` without
/// waiting for the busy timeout.
pub(super) const BUSY_PAUSE: Duration = Duration::from_millis(2);

/// A storage error for a failed SQLite call while doing `action` on the database `label`.
pub(super) fn sql_error(
    label: &str,
    timeout: Duration,
    action: impl fmt::Display,
    e: rusqlite::Error,
) -> Error {
    use StorageErrorKind as K;
    let (kind, context) = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => (
            K::Busy,
            format!(
                "{action}: the database {label} is locked by another connection or process, still after the busy timeout of {} ms; retry later or raise SqliteOptions::busy_timeout",
                timeout.as_millis()
            ),
        ),
        Some(ErrorCode::NotADatabase) => (
            K::Corrupt,
            format!(
                "{action}: {label} is not a SQLite database (another kind of file, or its header is corrupt)"
            ),
        ),
        Some(ErrorCode::DatabaseCorrupt) => (
            K::Corrupt,
            format!("{action}: the database {label} is corrupt ({e}); restore it from a backup"),
        ),
        Some(ErrorCode::ReadOnly) => (
            K::Unavailable,
            format!(
                "{action}: the database {label} is read-only; the process needs write access to the file, its -wal and -shm files and its directory"
            ),
        ),
        Some(ErrorCode::CannotOpen) => (
            K::Unavailable,
            format!(
                "{action}: cannot open or create {label}; check that its directory exists and that this process may write there"
            ),
        ),
        Some(ErrorCode::PermissionDenied) => (
            K::Unavailable,
            format!("{action}: permission denied on {label}"),
        ),
        Some(ErrorCode::DiskFull) => (
            K::Unavailable,
            format!("{action}: the disk holding {label} is full"),
        ),
        Some(ErrorCode::SystemIoFailure) => (
            K::Unavailable,
            format!("{action}: I/O error on {label} ({e})"),
        ),
        _ => match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..) => (
                K::Corrupt,
                format!("{action} in {label}: a stored value cannot be read ({e})"),
            ),
            _ => (K::Other, format!("{action} in {label}: {e}")),
        },
    };
    StorageError::new(kind, context).caused_by(e).into()
}

pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(rusqlite::ffi::Error { extended_code, .. })
            if *extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || *extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Runs `attempt` again while SQLite answers `SQLITE_BUSY` without having waited out the busy
/// timeout (it does so where waiting could deadlock, or during WAL recovery), until the timeout
/// has passed since the first attempt.
pub(super) fn retry_busy<T>(
    timeout: Duration,
    mut attempt: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => std::thread::sleep(BUSY_PAUSE),
            other => return other,
        }
    }
}

pub(super) fn to_sql_int(n: u64) -> rusqlite::Result<i64> {
    i64::try_from(n).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

pub(super) fn from_sql_int(n: i64) -> rusqlite::Result<u64> {
    u64::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, n))
}
