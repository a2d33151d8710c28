//! Reading the global log by cursor: pages of events, an opaque cursor to resume from, and
//! whether the reader is at the head.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, StorageError, StorageErrorKind};
use crate::record::StoredEvent;

/// Where a reader of the log stands: resume from it to see every committed event after it
/// exactly once. A projection's checkpoint is a saved cursor.
///
/// What a cursor holds is the store's business (a position for the memory and SQLite stores; a
/// transaction id and a position on PostgreSQL). It is serialized as a short string that carries
/// the store's identity and a check sum, so that a cursor from another store, or one that was
/// damaged, is refused with a clear error instead of silently skipping or repeating events.
///
/// ```
/// use ventyd::storage::LogCursor;
///
/// let start = LogCursor::START;
/// let text = start.to_string();
/// assert_eq!(text.parse::<LogCursor>().unwrap(), start);
/// assert!("ventyd-cursor:1:garbage".parse::<LogCursor>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogCursor {
    origin: u64,
    a: u64,
    b: u64,
}

const PREFIX: &str = "ventyd-cursor:1:";

impl LogCursor {
    /// Before the first event of any store.
    pub const START: LogCursor = LogCursor {
        origin: 0,
        a: 0,
        b: 0,
    };

    /// For adapters: a cursor of the store whose identity is `origin` (not 0: a number the
    /// store picks at random when it is created and keeps), holding two numbers of the store's
    /// choosing.
    pub fn from_parts(origin: u64, a: u64, b: u64) -> Self {
        LogCursor { origin, a, b }
    }

    /// For adapters: the two numbers of a cursor of the store `origin`, or `(0, 0)` for
    /// [`START`](Self::START). A cursor of another store is an
    /// [`InvalidRequest`](StorageErrorKind::InvalidRequest) error that names both.
    pub fn parts_for(&self, origin: u64, store: &str) -> Result<(u64, u64), Error> {
        if self.is_start() {
            return Ok((0, 0));
        }
        if self.origin != origin {
            return Err(StorageError::invalid(format!(
                "the log cursor {self} comes from another store (store {:016x}), not from {store} (store {origin:016x}); a cursor resumes only the log it was read from",
                self.origin
            ))
            .into());
        }
        Ok((self.a, self.b))
    }

    /// Is this [`START`](Self::START)?
    pub fn is_start(&self) -> bool {
        *self == Self::START
    }

    fn check(origin: u64, a: u64, b: u64) -> u64 {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&origin.to_le_bytes());
        bytes[8..16].copy_from_slice(&a.to_le_bytes());
        bytes[16..].copy_from_slice(&b.to_le_bytes());
        crate::event::fnv1a(&bytes) & 0xffff_ffff
    }
}

impl Default for LogCursor {
    fn default() -> Self {
        Self::START
    }
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{:016x}:{}:{}:{:08x}",
            self.origin,
            self.a,
            self.b,
            Self::check(self.origin, self.a, self.b)
        )
    }
}

/// A string that is not a log cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a ventyd log cursor (expected \"{PREFIX}<store>:<n>:<n>:<check>\" as a store wrote it); it was damaged or comes from elsewhere"
)]
pub struct ParseCursorError {
    input: String,
}

impl FromStr for LogCursor {
    type Err = ParseCursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseCursorError {
            input: s.chars().take(120).collect(),
        };
        let rest = s.strip_prefix(PREFIX).ok_or_else(bad)?;
        let mut parts = rest.split(':');
        let mut next = || parts.next().ok_or_else(bad);
        let origin = u64::from_str_radix(next()?, 16).map_err(|_| bad())?;
        let a = next()?.parse::<u64>().map_err(|_| bad())?;
        let b = next()?.parse::<u64>().map_err(|_| bad())?;
        let check = u64::from_str_radix(next()?, 16).map_err(|_| bad())?;
        if parts.next().is_some() || check != Self::check(origin, a, b) {
            return Err(bad());
        }
        if origin == 0 && (a, b) != (0, 0) {
            return Err(bad());
        }
        Ok(LogCursor { origin, a, b })
    }
}

impl From<ParseCursorError> for Error {
    fn from(e: ParseCursorError) -> Self {
        StorageError::new(StorageErrorKind::InvalidRequest, e.to_string()).into()
    }
}

impl Serialize for LogCursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogCursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which events of the log a reader wants. A filtered read still moves the cursor past the
/// events it skipped.
///
/// ```
/// use ventyd::storage::LogFilter;
///
/// let f = LogFilter::all().entity_name("order").event_name("user:created");
/// assert!(f.matches("order", "order:placed"));
/// assert!(f.matches("user", "user:created"));
/// assert!(!f.matches("user", "user:renamed"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogFilter {
    /// Events of these entity names (all when both lists are empty).
    pub entity_names: Vec<String>,
    /// Events of these full event names (all when both lists are empty).
    pub event_names: Vec<String>,
}

impl LogFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Also every event of this entity name.
    pub fn entity_name(mut self, name: impl Into<String>) -> Self {
        self.entity_names.push(name.into());
        self
    }

    /// Also every event of this full event name.
    pub fn event_name(mut self, name: impl Into<String>) -> Self {
        self.event_names.push(name.into());
        self
    }

    /// Does the filter let every event through?
    pub fn is_all(&self) -> bool {
        self.entity_names.is_empty() && self.event_names.is_empty()
    }

    /// Does an event of `entity_name` named `event_name` pass?
    pub fn matches(&self, entity_name: &str, event_name: &str) -> bool {
        self.is_all()
            || self.entity_names.iter().any(|n| n == entity_name)
            || self.event_names.iter().any(|n| n == event_name)
    }
}

/// A read of the log: from a cursor, at most `limit` events, through a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogRequest {
    /// Where to resume: events after this cursor.
    pub after: LogCursor,
    /// The most events (good or corrupt) a page holds; at least 1.
    pub limit: usize,
    /// Which events to return.
    pub filter: LogFilter,
}

impl LogRequest {
    /// Up to `limit` events after `after`, unfiltered.
    pub fn new(after: LogCursor, limit: usize) -> Self {
        LogRequest {
            after,
            limit,
            filter: LogFilter::all(),
        }
    }

    /// Only events that pass `filter`.
    pub fn filter(mut self, filter: LogFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Refuses a zero limit (a page that can never move on).
    pub fn check(&self) -> Result<(), Error> {
        if self.limit == 0 {
            return Err(StorageError::invalid(
                "a log read needs a limit of at least 1 event per page",
            )
            .into());
        }
        Ok(())
    }
}

/// A stored event of the log that could not be read: reported with its position so that a
/// reader can stop at it (resuming from the cursor before it) or go on past it.
#[derive(Debug)]
#[non_exhaustive]
pub struct CorruptEvent {
    /// The position of the row.
    pub position: u64,
    /// What is wrong with it (kind [`Corrupt`](StorageErrorKind::Corrupt)).
    pub error: StorageError,
}

impl CorruptEvent {
    /// A corrupt row at `position`.
    pub fn new(position: u64, error: StorageError) -> Self {
        CorruptEvent { position, error }
    }
}

/// One entry of a log page: an event, or a row that could not be read, with the cursor that
/// resumes right after it.
#[derive(Debug)]
#[non_exhaustive]
pub struct LogEntry {
    /// Resume here to continue after this entry.
    pub cursor: LogCursor,
    /// The event, or why it could not be read.
    pub event: Result<Arc<StoredEvent>, CorruptEvent>,
}

impl LogEntry {
    /// An entry.
    pub fn new(cursor: LogCursor, event: Result<Arc<StoredEvent>, CorruptEvent>) -> Self {
        LogEntry { cursor, event }
    }

    /// The position of the entry in the log.
    pub fn position(&self) -> u64 {
        match &self.event {
            Ok(e) => e.position,
            Err(c) => c.position,
        }
    }
}

/// A page of the log.
#[derive(Debug)]
#[non_exhaustive]
pub struct LogPage {
    /// The entries, in commit order.
    pub entries: Vec<LogEntry>,
    /// Resume here for the next page: past every entry of this page and past the events the
    /// filter skipped.
    pub cursor: LogCursor,
    /// `true` when the page reached the end of what was committed when it was read.
    pub at_head: bool,
}

impl LogPage {
    /// A page.
    pub fn new(entries: Vec<LogEntry>, cursor: LogCursor, at_head: bool) -> Self {
        LogPage {
            entries,
            cursor,
            at_head,
        }
    }

    /// The events that could be read, in order.
    pub fn events(&self) -> impl Iterator<Item = &Arc<StoredEvent>> + '_ {
        self.entries.iter().filter_map(|e| e.event.as_ref().ok())
    }

    /// The rows that could not be read.
    pub fn corrupt(&self) -> impl Iterator<Item = &CorruptEvent> + '_ {
        self.entries.iter().filter_map(|e| e.event.as_ref().err())
    }

    /// The events, or the error of the first row that could not be read.
    pub fn into_events(self) -> Result<Vec<Arc<StoredEvent>>, Error> {
        self.entries
            .into_iter()
            .map(|e| e.event.map_err(|c| Error::Storage(c.error)))
            .collect()
    }
}
