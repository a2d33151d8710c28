//! How a SQLite store is opened: sync mode, busy timeout, readers.

use std::time::Duration;

/// How SQLite syncs commits to disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Sync the write-ahead log on every commit: a commit that returned survives a power loss.
    #[default]
    Full,
    /// Sync only at checkpoints: much faster commits, never a corrupt file, but the last
    /// commits before a power loss or an OS crash may be lost (a crash of the process alone
    /// loses nothing).
    Normal,
}

impl Synchronous {
    pub(super) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Options for [`SqliteStorage::open_with`](super::SqliteStorage::open_with).
///
/// ```
/// use std::time::Duration;
/// use ventyd::storage::sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new()
///     .busy_timeout(Duration::from_secs(1))
///     .synchronous(Synchronous::Normal);
/// assert_eq!(options.get_busy_timeout(), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqliteOptions {
    pub(super) busy_timeout: Duration,
    pub(super) synchronous: Synchronous,
    pub(super) readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            readers: 4,
        }
    }
}

impl SqliteOptions {
    /// The defaults: a busy timeout of 5 seconds, [`Synchronous::Full`] and 4 readers.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a write waits for another connection or process to release the database
    /// before failing with a "database is locked" error.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How commits are synced to disk; see [`Synchronous`].
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How many read-only connections serve reads in parallel (4 by default), each opened when
    /// reads first need it. With 0, reads use the writer's connection and wait for writes.
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// The busy timeout.
    pub fn get_busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The sync mode.
    pub fn get_synchronous(&self) -> Synchronous {
        self.synchronous
    }

    /// The number of readers.
    pub fn get_readers(&self) -> usize {
        self.readers
    }
}
