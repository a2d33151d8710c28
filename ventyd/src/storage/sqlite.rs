//! The SQLite store (placeholder while it is being written).

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStorage;
