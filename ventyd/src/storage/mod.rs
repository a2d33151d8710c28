//! The storage trait and its adapters.
//!
//! A store keeps one append-only log. Every event belongs to one stream, named by entity name and
//! entity id, in which versions run 1, 2, 3, ... without gaps; every event also gets a global
//! `position` that increases strictly in commit order. The trait is small on purpose: an adapter
//! implements five async methods (append, read a stream, read the log, read and write a
//! snapshot), may override `visit_stream` to lend its rows instead of copying them, and proves
//! its behaviour with the same conformance suite as every other adapter
//! (`ventyd::storage_conformance!`, feature `testing`).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;

use crate::envelope::Metadata;
use crate::error::Error;
use crate::time::Timestamp;

mod memory;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

pub use memory::MemoryStorage;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStorage;

/// What an append expects the stream's current version to be (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check: append after whatever is there.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Does a stream at `actual` (0 = absent) satisfy this expectation?
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }

    /// The expectation an entity at committed version `version` commits with.
    pub fn after(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// An event as a store keeps it: envelope fields plus the body as JSON text.
///
/// Stores hand events out as `Arc<StoredEvent>`: a stored event never changes, and sharing it
/// lets a store that keeps events in memory, or a relay that feeds several projections, hand out
/// the same event without copying it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Global position, strictly increasing in commit order.
    pub position: u64,
    /// The event id.
    pub event_id: Uuid,
    /// The full event name.
    pub event_name: String,
    /// The entity name.
    pub entity_name: String,
    /// The entity id.
    pub entity_id: String,
    /// The version in the stream (1-based, gapless).
    pub version: u64,
    /// The schema version of the body.
    pub schema_version: u32,
    /// When the event was created.
    pub event_created_at: Timestamp,
    /// Who and why, when given.
    pub metadata: Option<Arc<Metadata>>,
    /// The body, as JSON text.
    pub body: String,
    /// The fingerprint of the JSON Schema the body was checked against before it was stored
    /// ([`EventSchema::fingerprint`](crate::EventSchema::fingerprint)), when the writer recorded
    /// one. A reader with the same schema need not check the body again.
    pub checked_schema: Option<u64>,
}

impl StoredEvent {
    /// The event, borrowed.
    pub fn as_event_ref(&self) -> EventRef<'_> {
        EventRef {
            position: self.position,
            event_id: self.event_id,
            event_name: &self.event_name,
            entity_name: &self.entity_name,
            entity_id: &self.entity_id,
            version: self.version,
            schema_version: self.schema_version,
            event_created_at: self.event_created_at,
            metadata: self.metadata.as_ref(),
            body: &self.body,
            checked_schema: self.checked_schema,
        }
    }

    /// The body parsed as a JSON value.
    pub fn body_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// A stored event borrowed from wherever the store holds it (a row buffer, a cache), as a
/// [`EventVisitor`] receives it. The fields mean what those of [`StoredEvent`] mean.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub struct EventRef<'a> {
    pub position: u64,
    pub event_id: Uuid,
    pub event_name: &'a str,
    pub entity_name: &'a str,
    pub entity_id: &'a str,
    pub version: u64,
    pub schema_version: u32,
    pub event_created_at: Timestamp,
    pub metadata: Option<&'a Arc<Metadata>>,
    pub body: &'a str,
    pub checked_schema: Option<u64>,
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            position: self.position,
            event_id: self.event_id,
            event_name: self.event_name.to_owned(),
            entity_name: self.entity_name.to_owned(),
            entity_id: self.entity_id.to_owned(),
            version: self.version,
            schema_version: self.schema_version,
            event_created_at: self.event_created_at,
            metadata: self.metadata.cloned(),
            body: self.body.to_owned(),
            checked_schema: self.checked_schema,
        }
    }
}

/// Receives a stream's events one at a time, borrowed, in version order: how a repository folds
/// an entity while the store reads it, without an owned copy of every event.
pub trait EventVisitor: Send + 'static {
    /// Takes one event; an error stops the read and is returned from it.
    fn visit(&mut self, event: EventRef<'_>) -> Result<(), Error>;

    /// How many events are coming, when the store knows before the first (to size buffers).
    fn expect(&mut self, events: usize) {
        let _ = events;
    }
}

/// An event to append; the store assigns its version and position.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The event id; appending an id that is already stored in the same place is a no-op.
    pub event_id: Uuid,
    /// The full event name.
    pub event_name: Cow<'static, str>,
    /// The schema version of the body.
    pub schema_version: u32,
    /// When the event was created.
    pub event_created_at: Timestamp,
    /// Who and why.
    pub metadata: Option<Arc<Metadata>>,
    /// The body, as JSON text.
    pub body: String,
    /// The fingerprint of the schema the body was checked against, if it was (see
    /// [`StoredEvent::checked_schema`]).
    pub checked_schema: Option<u64>,
}

impl NewEvent {
    /// An event with schema version 1, created now, without metadata or a schema check record.
    ///
    /// ```
    /// use ventyd::storage::NewEvent;
    /// use ventyd::{IdGenerator, UuidV7};
    ///
    /// let e = NewEvent::new(UuidV7.event_id(), "user:created", r#"{"email":"a@example.com"}"#);
    /// assert_eq!(e.schema_version, 1);
    /// assert_eq!(e.checked_schema, None);
    /// ```
    pub fn new(
        event_id: Uuid,
        event_name: impl Into<Cow<'static, str>>,
        body: impl Into<String>,
    ) -> Self {
        NewEvent {
            event_id,
            event_name: event_name.into(),
            schema_version: 1,
            event_created_at: Timestamp::now(),
            metadata: None,
            body: body.into(),
            checked_schema: None,
        }
    }
}

/// One atomic append to one stream.
#[derive(Debug, Clone, Copy)]
pub struct AppendRequest<'a> {
    /// The entity name.
    pub entity_name: &'a str,
    /// The entity id.
    pub entity_id: &'a str,
    /// The version the stream must be at.
    pub expected: ExpectedVersion,
    /// The events, in order; all are stored or none.
    pub events: &'a [NewEvent],
    /// A snapshot of the state after these events, stored in the same atomic step where the
    /// store allows it. Its stream must be this one and its version the version after the append.
    pub snapshot: Option<&'a Snapshot>,
}

impl<'a> AppendRequest<'a> {
    /// An append of `events` to the stream `entity_name`/`entity_id`, without a snapshot.
    pub fn new(
        entity_name: &'a str,
        entity_id: &'a str,
        expected: ExpectedVersion,
        events: &'a [NewEvent],
    ) -> Self {
        AppendRequest {
            entity_name,
            entity_id,
            expected,
            events,
            snapshot: None,
        }
    }

    /// Adds a snapshot to store with the events.
    pub fn with_snapshot(mut self, snapshot: &'a Snapshot) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// Checks that the snapshot, if any, belongs to this stream at the version after the append
    /// to a stream at `actual`; stores call this before writing anything.
    pub fn check_snapshot(&self, actual: u64) -> Result<(), Error> {
        let Some(s) = self.snapshot else {
            return Ok(());
        };
        let version = actual + self.events.len() as u64;
        if s.entity_name != self.entity_name
            || s.entity_id != self.entity_id
            || s.version != version
        {
            return Err(crate::error::StorageError::msg(format!(
                "the snapshot of {} {:?} at version {} does not match the append to {} {:?}, which ends at version {version}",
                s.entity_name, s.entity_id, s.version, self.entity_name, self.entity_id
            ))
            .into());
        }
        Ok(())
    }
}

/// A stored state of one entity at one version, so that loading need not replay every event.
///
/// `schema_hash` identifies the shape of the state type when the snapshot was taken; a reader
/// whose state type has another hash ignores the snapshot and replays the events instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The entity name.
    pub entity_name: String,
    /// The entity id.
    pub entity_id: String,
    /// The version of the entity the state is at.
    pub version: u64,
    /// A hash of the state type's JSON Schema.
    pub schema_hash: String,
    /// The state, as JSON text.
    pub state: String,
    /// When the snapshot was taken.
    pub created_at: Timestamp,
}

/// What an append stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream's version after the append.
    pub version: u64,
    /// The global position of each appended event, in order.
    pub positions: Vec<u64>,
}

/// Which part of a stream to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    /// The first version to read (1 = from the start).
    pub from_version: u64,
    /// The last version to read, inclusive; `None` = to the end.
    pub to_version: Option<u64>,
}

impl ReadRange {
    /// The whole stream.
    pub const ALL: ReadRange = ReadRange {
        from_version: 1,
        to_version: None,
    };

    /// Versions 1 to `version`, inclusive (time travel).
    pub fn up_to(version: u64) -> Self {
        ReadRange {
            from_version: 1,
            to_version: Some(version),
        }
    }

    /// Does `version` fall in the range?
    pub fn contains(&self, version: u64) -> bool {
        version >= self.from_version && self.to_version.is_none_or(|to| version <= to)
    }
}

impl Default for ReadRange {
    fn default() -> Self {
        ReadRange::ALL
    }
}

/// An event store.
///
/// Adapters guarantee: an append is atomic; the expected version is checked against the stream
/// inside the same atomic step (a mismatch is [`Error::Concurrency`] with the actual version);
/// appending event ids that are already stored, at the same stream and versions, returns the
/// stored outcome instead of duplicating them (a retry after an ambiguous failure is safe).
pub trait Storage: Send + Sync + 'static {
    /// Appends events to one stream, atomically.
    fn append(
        &self,
        request: AppendRequest<'_>,
    ) -> impl Future<Output = Result<AppendOutcome, Error>> + Send;

    /// Reads one stream's events in version order.
    fn read_stream(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
    ) -> impl Future<Output = Result<Vec<Arc<StoredEvent>>, Error>> + Send;

    /// Reads the global log from `from_position` (inclusive), at most `limit` events, in
    /// position order.
    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Arc<StoredEvent>>, Error>> + Send;

    /// Reads one stream's events in version order into `visitor` and gives it back. A store that
    /// can lend its rows (SQLite) hands each event over without copying it; the default reads
    /// with [`read_stream`](Storage::read_stream).
    fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> impl Future<Output = Result<V, Error>> + Send {
        async move {
            let mut visitor = visitor;
            let events = self.read_stream(entity_name, entity_id, range).await?;
            visitor.expect(events.len());
            for event in events {
                visitor.visit(event.as_event_ref())?;
            }
            Ok(visitor)
        }
    }

    /// The latest snapshot of one entity, if any.
    fn read_snapshot(
        &self,
        entity_name: &str,
        entity_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, Error>> + Send;

    /// Stores a snapshot, unless the store holds one of a later version of the same entity
    /// already (an older snapshot never replaces a newer one).
    fn write_snapshot(&self, snapshot: &Snapshot)
    -> impl Future<Output = Result<(), Error>> + Send;
}

impl<S: Storage> Storage for Arc<S> {
    fn append(
        &self,
        request: AppendRequest<'_>,
    ) -> impl Future<Output = Result<AppendOutcome, Error>> + Send {
        (**self).append(request)
    }

    fn read_stream(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
    ) -> impl Future<Output = Result<Vec<Arc<StoredEvent>>, Error>> + Send {
        (**self).read_stream(entity_name, entity_id, range)
    }

    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Arc<StoredEvent>>, Error>> + Send {
        (**self).read_all(from_position, limit)
    }

    fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> impl Future<Output = Result<V, Error>> + Send {
        (**self).visit_stream(entity_name, entity_id, range, visitor)
    }

    fn read_snapshot(
        &self,
        entity_name: &str,
        entity_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, Error>> + Send {
        (**self).read_snapshot(entity_name, entity_id)
    }

    fn write_snapshot(
        &self,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).write_snapshot(snapshot)
    }
}
