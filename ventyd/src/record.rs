//! Events as stores keep them: the stored record, a borrowed view of it, and a new event to
//! append. They sit below the storage seam because the envelope decodes from them too.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::Error;
use crate::event_id::EventId;
use crate::metadata::Metadata;
use crate::time::Timestamp;

/// An event as a store keeps it: envelope fields plus the body as JSON text.
///
/// Stores hand events out as `Arc<StoredEvent>`: a stored event never changes, and sharing it
/// lets a store that keeps events in memory, or a relay that feeds several projections, hand out
/// the same event without copying it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StoredEvent {
    /// The event's place in the global log: positions increase in commit order, and may have
    /// gaps.
    pub position: u64,
    /// The event id.
    pub event_id: EventId,
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
    /// When the writer created the event, by the writer's clock (`eventCreatedAt`).
    pub event_created_at: Timestamp,
    /// When the store committed the event, by the store's clock (`recordedAt`). Every event of
    /// one commit has the same time, and times never decrease in log order.
    pub recorded_at: Timestamp,
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
            event_id: &self.event_id,
            event_name: &self.event_name,
            entity_name: &self.entity_name,
            entity_id: &self.entity_id,
            version: self.version,
            schema_version: self.schema_version,
            event_created_at: self.event_created_at,
            recorded_at: self.recorded_at,
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

/// A stored event borrowed from wherever the store holds it (a row buffer, a cache), as an
/// [`EventVisitor`] receives it. The fields mean what those of [`StoredEvent`] mean; adapters
/// build it with a struct literal, which is why it is not `#[non_exhaustive]`: a field added
/// here is a breaking change for adapters, made only in a minor release before 1.0.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub struct EventRef<'a> {
    pub position: u64,
    pub event_id: &'a EventId,
    pub event_name: &'a str,
    pub entity_name: &'a str,
    pub entity_id: &'a str,
    pub version: u64,
    pub schema_version: u32,
    pub event_created_at: Timestamp,
    pub recorded_at: Timestamp,
    pub metadata: Option<&'a Arc<Metadata>>,
    pub body: &'a str,
    pub checked_schema: Option<u64>,
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            position: self.position,
            event_id: self.event_id.clone(),
            event_name: self.event_name.to_owned(),
            entity_name: self.entity_name.to_owned(),
            entity_id: self.entity_id.to_owned(),
            version: self.version,
            schema_version: self.schema_version,
            event_created_at: self.event_created_at,
            recorded_at: self.recorded_at,
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

/// Collects the events a store lends into owned, shared copies: what
/// [`Storage::read_stream`](crate::storage::Storage::read_stream) returns.
#[derive(Debug, Default)]
pub struct CollectEvents(pub Vec<Arc<StoredEvent>>);

impl EventVisitor for CollectEvents {
    fn visit(&mut self, event: EventRef<'_>) -> Result<(), Error> {
        self.0.push(Arc::new(event.to_stored()));
        Ok(())
    }

    fn expect(&mut self, events: usize) {
        self.0.reserve(events);
    }
}

/// An event to append; the store assigns its version, its position and its commit time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewEvent {
    /// The event id; appending an id that is already stored in the same place is a no-op (see
    /// [`Storage`](crate::storage::Storage) on retries).
    pub event_id: EventId,
    /// The full event name.
    pub event_name: Cow<'static, str>,
    /// The schema version of the body.
    pub schema_version: u32,
    /// When the writer created the event.
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
        event_id: impl Into<EventId>,
        event_name: impl Into<Cow<'static, str>>,
        body: impl Into<String>,
    ) -> Self {
        NewEvent {
            event_id: event_id.into(),
            event_name: event_name.into(),
            schema_version: 1,
            event_created_at: Timestamp::now(),
            metadata: None,
            body: body.into(),
            checked_schema: None,
        }
    }

    /// Sets the schema version of the body.
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// Sets the writer's creation time.
    pub fn created_at(mut self, at: Timestamp) -> Self {
        self.event_created_at = at;
        self
    }

    /// Sets who and why.
    pub fn metadata(mut self, metadata: Arc<Metadata>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Records the fingerprint of the schema the body passed.
    pub fn checked_schema(mut self, fingerprint: u64) -> Self {
        self.checked_schema = Some(fingerprint);
        self
    }
}
