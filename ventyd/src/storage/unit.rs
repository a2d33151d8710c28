//! The unit of work: appends to one or more streams and keyed document writes, committed
//! together or not at all, and what the store reports back.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use crate::event_id::EventId;

use crate::error::{Error, StorageError};
use crate::metadata::Metadata;
use crate::record::NewEvent;
use crate::time::Timestamp;
use crate::version::{ExpectedRevision, ExpectedVersion};

/// An append to one stream inside a [`UnitOfWork`]: the events, in order, and the version the
/// stream must be at.
///
/// ```
/// use ventyd::storage::{AppendRequest, NewEvent};
/// use ventyd::{ExpectedVersion, IdGenerator, UuidV7};
///
/// let events = [NewEvent::new(UuidV7.event_id(), "user:created", r#"{"email":"a@example.com"}"#)];
/// let append = AppendRequest::new("user", "42", ExpectedVersion::NoStream, &events);
/// assert_eq!(append.events.len(), 1);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AppendRequest<'a> {
    /// The entity name.
    pub entity_name: &'a str,
    /// The entity id.
    pub entity_id: &'a str,
    /// The version the stream must be at.
    pub expected: ExpectedVersion,
    /// The events, in order. An append of no events only checks the expected version.
    pub events: &'a [NewEvent],
}

impl<'a> AppendRequest<'a> {
    /// An append of `events` to the stream `entity_name`/`entity_id`.
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
        }
    }

    /// The stream, for messages: `user "42"`.
    pub(crate) fn stream(&self) -> String {
        format!("{} {:?}", self.entity_name, self.entity_id)
    }
}

/// What a document write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DocumentOp<'a> {
    /// Store this JSON text as the document's body.
    Put(&'a str),
    /// Remove the document.
    Delete,
}

/// A keyed document write inside a [`UnitOfWork`]: a snapshot, an inline-view row, a
/// projection's checkpoint. Documents live in collections, are read back by key with their
/// revision, and are listed by collection in key order.
///
/// ```
/// use ventyd::ExpectedRevision;
/// use ventyd::storage::DocumentWrite;
///
/// let put = DocumentWrite::put("orders-by-customer", "c-7", ExpectedRevision::Absent, r#"{"orders":1}"#);
/// let delete = DocumentWrite::delete("orders-by-customer", "c-8", ExpectedRevision::Exact(3));
/// assert_eq!(put.key, "c-7");
/// # let _ = delete;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DocumentWrite<'a> {
    /// The collection.
    pub collection: &'a str,
    /// The key within the collection.
    pub key: &'a str,
    /// The revision the document must be at for the write to happen.
    pub expected: ExpectedRevision,
    /// Put or delete.
    pub op: DocumentOp<'a>,
}

impl<'a> DocumentWrite<'a> {
    /// Stores `body` (JSON text) under `collection`/`key`.
    pub fn put(
        collection: &'a str,
        key: &'a str,
        expected: ExpectedRevision,
        body: &'a str,
    ) -> Self {
        DocumentWrite {
            collection,
            key,
            expected,
            op: DocumentOp::Put(body),
        }
    }

    /// Removes `collection`/`key`. Deleting an absent document expecting
    /// [`Any`](ExpectedRevision::Any) or [`Absent`](ExpectedRevision::Absent) succeeds and changes
    /// nothing.
    pub fn delete(collection: &'a str, key: &'a str, expected: ExpectedRevision) -> Self {
        DocumentWrite {
            collection,
            key,
            expected,
            op: DocumentOp::Delete,
        }
    }

    /// The revision after this write, from the one before it (`None`: absent).
    pub fn next_revision(&self, current: Option<u64>) -> Option<u64> {
        match self.op {
            DocumentOp::Put(_) => Some(current.unwrap_or(0) + 1),
            DocumentOp::Delete => None,
        }
    }

    /// The conflict error for a document found at `actual`.
    pub fn conflict(&self, actual: Option<u64>) -> Error {
        Error::DocumentConflict {
            collection: self.collection.to_owned(),
            key: self.key.to_owned(),
            expected: self.expected,
            actual,
        }
    }
}

/// One atomic unit of work: appends to one or more streams (each with its own expected version,
/// of the same or of different entity types) and document writes (each with its own
/// compare-and-set expectation), applied all together or not at all.
///
/// A conflict on any stream or document fails the whole unit with an error that names it
/// ([`Error::Concurrency`], [`Error::DocumentConflict`]), and nothing of the unit is stored.
///
/// ```
/// use ventyd::storage::{AppendRequest, DocumentWrite, NewEvent, UnitOfWork};
/// use ventyd::{ExpectedRevision, ExpectedVersion, IdGenerator, UuidV7};
///
/// let debit = [NewEvent::new(UuidV7.event_id(), "account:debited", r#"{"amount":10}"#)];
/// let credit = [NewEvent::new(UuidV7.event_id(), "account:credited", r#"{"amount":10}"#)];
/// let unit = UnitOfWork::new()
///     .append(AppendRequest::new("account", "a", ExpectedVersion::Exact(4), &debit))
///     .append(AppendRequest::new("account", "b", ExpectedVersion::Exact(9), &credit))
///     .document(DocumentWrite::put("transfers", "t-1", ExpectedRevision::Absent, "{}"));
/// assert!(unit.check().is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct UnitOfWork<'a> {
    appends: Vec<AppendRequest<'a>>,
    documents: Vec<DocumentWrite<'a>>,
}

impl<'a> UnitOfWork<'a> {
    /// An empty unit (committing it as it is is an error).
    pub fn new() -> Self {
        Self::default()
    }

    /// A unit of one append: the common case.
    pub fn single(append: AppendRequest<'a>) -> Self {
        UnitOfWork {
            appends: vec![append],
            documents: Vec::new(),
        }
    }

    /// Adds an append.
    pub fn append(mut self, append: AppendRequest<'a>) -> Self {
        self.appends.push(append);
        self
    }

    /// Adds a document write.
    pub fn document(mut self, write: DocumentWrite<'a>) -> Self {
        self.documents.push(write);
        self
    }

    /// Adds an append, in place.
    pub fn push_append(&mut self, append: AppendRequest<'a>) {
        self.appends.push(append);
    }

    /// Adds a document write, in place.
    pub fn push_document(&mut self, write: DocumentWrite<'a>) {
        self.documents.push(write);
    }

    /// The appends, in the order they were added.
    pub fn appends(&self) -> &[AppendRequest<'a>] {
        &self.appends
    }

    /// The document writes, in the order they were added.
    pub fn documents(&self) -> &[DocumentWrite<'a>] {
        &self.documents
    }

    /// `true` when the unit holds neither appends nor document writes.
    pub fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.documents.is_empty()
    }

    /// The number of events the unit appends.
    pub fn event_count(&self) -> usize {
        self.appends.iter().map(|a| a.events.len()).sum()
    }

    /// Checks the unit before anything is written; every store calls this first. Refused, with
    /// an [`InvalidRequest`](crate::StorageErrorKind::InvalidRequest) error naming what is wrong:
    /// an empty unit; a stream appended to twice; a document written twice; an event id used
    /// twice; an empty entity name, entity id, event name, collection or key; a NUL character in
    /// any of them, in a body (raw, or as the JSON escape `\u0000`) or anywhere in an event's
    /// metadata (no store can keep one faithfully: PostgreSQL's text and JSONB refuse it).
    pub fn check(&self) -> Result<(), Error> {
        if self.is_empty() {
            return Err(StorageError::invalid(
                "cannot commit an empty unit of work: add an append or a document write",
            )
            .into());
        }
        let single = self.appends.len() == 1 && self.documents.is_empty();
        let mut streams = HashSet::new();
        let mut ids: HashSet<EventId> = HashSet::new();
        // The events of one commit share one metadata `Arc`: it is checked once.
        let mut checked: Option<&Arc<Metadata>> = None;
        for a in &self.appends {
            text(a.entity_name, "an entity name", || a.stream())?;
            text(a.entity_id, "an entity id", || a.stream())?;
            if !single && !streams.insert((a.entity_name, a.entity_id)) {
                return Err(StorageError::invalid(format!(
                    "the unit of work appends to {} twice; put all of a stream's events in one append",
                    a.stream()
                ))
                .into());
            }
            for e in a.events {
                text(&e.event_name, "an event name", || {
                    format!("event {} of {}", e.event_id, a.stream())
                })?;
                if json_has_nul(&e.body) {
                    return Err(StorageError::invalid(format!(
                        "the body of event {} ({}) of {} contains a NUL character (or a \\u0000 escape), which no store keeps; remove it or encode it",
                        e.event_id,
                        e.event_name,
                        a.stream()
                    ))
                    .into());
                }
                if let Some(m) = &e.metadata
                    && !checked.is_some_and(|c| Arc::ptr_eq(c, m))
                {
                    if metadata_has_nul(m) {
                        return Err(StorageError::invalid(format!(
                            "the metadata of event {} ({}) of {} contains a NUL character, which no store keeps",
                            e.event_id,
                            e.event_name,
                            a.stream()
                        ))
                        .into());
                    }
                    checked = Some(m);
                }
                // A unit of one event cannot repeat an id: no set is built for it.
                let fresh = (single && a.events.len() == 1) || ids.insert(e.event_id.clone());
                if !fresh {
                    return Err(StorageError::invalid(format!(
                        "event id {} appears twice in the unit of work (in {}); an event id may be used once",
                        e.event_id,
                        a.stream()
                    ))
                    .into());
                }
            }
        }
        let mut docs = HashSet::new();
        for d in &self.documents {
            let at = || format!("document {:?} of {:?}", d.key, d.collection);
            text(d.collection, "a collection name", at)?;
            text(d.key, "a document key", at)?;
            if let DocumentOp::Put(body) = d.op
                && json_has_nul(body)
            {
                return Err(StorageError::invalid(format!(
                    "the body of {} contains a NUL character (or a \\u0000 escape), which no store keeps",
                    at()
                ))
                .into());
            }
            if !docs.insert((d.collection, d.key)) {
                return Err(StorageError::invalid(format!(
                    "the unit of work writes {} twice; write each document once",
                    at()
                ))
                .into());
            }
        }
        Ok(())
    }
}

/// `true` when JSON text holds a NUL character, raw or as a `\u0000` escape (PostgreSQL's JSONB
/// refuses the escape; a raw one is not JSON at all). `\\u0000`, an escaped backslash before
/// `u0000`, is no NUL.
fn json_has_nul(json: &str) -> bool {
    if json.contains('\0') {
        return true;
    }
    let mut from = 0;
    while let Some(found) = json[from..].find("\\u0000") {
        let at = from + found;
        // The backslash at `at` starts an escape when the run of backslashes it ends is odd.
        let run = json.as_bytes()[..=at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if run % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// `true` when a string of the metadata (a field, a key or a value) holds a NUL character.
fn metadata_has_nul(m: &Metadata) -> bool {
    fn value_has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(value_has_nul),
            serde_json::Value::Object(map) => map
                .iter()
                .any(|(k, v)| k.contains('\0') || value_has_nul(v)),
            _ => false,
        }
    }
    [&m.correlation_id, &m.causation_id, &m.actor, &m.reason]
        .into_iter()
        .flatten()
        .any(|s| s.contains('\0'))
        || m.extra
            .iter()
            .any(|(k, v)| k.contains('\0') || value_has_nul(v))
}

fn text(value: &str, what: &str, at: impl FnOnce() -> String) -> Result<(), Error> {
    if value.is_empty() {
        return Err(StorageError::invalid(format!("{what} is empty (in {})", at())).into());
    }
    if value.contains('\0') {
        return Err(StorageError::invalid(format!(
            "{what} contains a NUL character (in {}), which no store keeps",
            at()
        ))
        .into());
    }
    Ok(())
}

/// Where the store put one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct EventPlace {
    /// The event's position in the global log.
    pub position: u64,
    /// The store's commit time of the event.
    pub recorded_at: Timestamp,
}

impl EventPlace {
    /// A place in the log at a commit time.
    pub fn new(position: u64, recorded_at: Timestamp) -> Self {
        EventPlace {
            position,
            recorded_at,
        }
    }
}

/// What one append of a unit stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendOutcome {
    /// The stream's version after the append.
    pub version: u64,
    /// Where each appended event went, in order.
    pub events: Vec<EventPlace>,
}

impl AppendOutcome {
    /// An outcome: the version after the append, and each event's place.
    pub fn new(version: u64, events: Vec<EventPlace>) -> Self {
        AppendOutcome { version, events }
    }

    /// The global position of each appended event, in order.
    pub fn positions(&self) -> Vec<u64> {
        self.events.iter().map(|e| e.position).collect()
    }
}

/// What a committed unit of work stored: one outcome per append and one revision per document
/// write, in the order the unit holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitOutcome {
    /// The store's commit time: stored with every event this commit appended. A retry that
    /// found the whole unit stored reports the time of the commit that stored it.
    pub recorded_at: Timestamp,
    /// One outcome per append.
    pub appends: Vec<AppendOutcome>,
    /// One revision per document write: the document's revision after it (`None`: deleted).
    pub documents: Vec<Option<u64>>,
}

impl CommitOutcome {
    /// An outcome.
    pub fn new(
        recorded_at: Timestamp,
        appends: Vec<AppendOutcome>,
        documents: Vec<Option<u64>>,
    ) -> Self {
        CommitOutcome {
            recorded_at,
            appends,
            documents,
        }
    }
}

// ---- retries: what adapters share ----

/// What a store knows of an event id that is already stored.
#[derive(Debug, Clone)]
pub(crate) struct Prior<'s> {
    pub entity_name: Cow<'s, str>,
    pub entity_id: Cow<'s, str>,
    pub version: u64,
    pub event_name: Cow<'s, str>,
    pub body: Cow<'s, str>,
    pub place: EventPlace,
}

/// How much of an append is stored already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    /// None of its events (the first id is not stored).
    Fresh,
    /// Its first `events.len()` events, at versions `first_version..`; the rest are not.
    Stored {
        first_version: u64,
        events: Vec<EventPlace>,
    },
}

/// Bodies compare as JSON values: a store may keep them in another text form (PostgreSQL's
/// JSONB does), and a retry must still be recognised.
pub(crate) fn same_body(stored: &str, sent: &str) -> bool {
    stored == sent
        || matches!(
            (
                serde_json::from_str::<serde_json::Value>(stored),
                serde_json::from_str::<serde_json::Value>(sent),
            ),
            (Ok(a), Ok(b)) if a == b
        )
}

/// Finds how much of `req` a store holds already, from `lookup` (an event id to what is stored
/// under it).
///
/// A retry of a commit whose outcome was lost finds its events stored. When the entity queued
/// more events before the retry, the request holds the stored events first and then the new
/// ones: the stored ones are recognised (same stream, consecutive versions, same names and
/// bodies) and the store appends only the rest. An event id stored anywhere else, or with other
/// content, is refused; so is any event id after the stored prefix that is stored at all.
pub(crate) fn settle<'s>(
    req: &AppendRequest<'_>,
    mut lookup: impl FnMut(&EventId) -> Result<Option<Prior<'s>>, Error>,
) -> Result<Settled, Error> {
    let mut first_version = 0;
    let mut events = Vec::new();
    // The events after the stored prefix, from the first one whose id is not stored.
    let mut rest = req.events.len();
    for (i, e) in req.events.iter().enumerate() {
        let Some(prior) = lookup(&e.event_id)? else {
            rest = i + 1;
            break;
        };
        if i == 0 {
            first_version = prior.version;
        }
        let here = prior.entity_name == req.entity_name && prior.entity_id == req.entity_id;
        if !here || prior.version != first_version + i as u64 {
            return Err(id_reused(
                req,
                &e.event_id,
                (&prior.entity_name, &prior.entity_id, prior.version),
            ));
        }
        if prior.event_name != e.event_name || !same_body(&prior.body, &e.body) {
            return Err(StorageError::invalid(format!(
                "cannot append to {}: event id {} is already stored at version {} with different content ({} {}); an event id may be used once",
                req.stream(),
                e.event_id,
                prior.version,
                prior.event_name,
                prior.body
            ))
            .into());
        }
        events.push(prior.place);
    }
    // No event after the prefix may be stored anywhere.
    for e in &req.events[rest.min(req.events.len())..] {
        if let Some(prior) = lookup(&e.event_id)? {
            return Err(id_reused(
                req,
                &e.event_id,
                (&prior.entity_name, &prior.entity_id, prior.version),
            ));
        }
    }
    if events.is_empty() {
        return Ok(Settled::Fresh);
    }
    Ok(Settled::Stored {
        first_version,
        events,
    })
}

/// The error for an event id of `req` that is already stored elsewhere: `held` says where.
fn id_reused(req: &AppendRequest<'_>, event_id: &EventId, held: (&str, &str, u64)) -> Error {
    StorageError::invalid(format!(
        "cannot append to {}: event id {event_id} is already stored in {} {:?} at version {}; an event id may be used once",
        req.stream(),
        held.0,
        held.1,
        held.2
    ))
    .into()
}

/// The conflict error for an append that found its stream at `actual`.
pub(crate) fn stream_conflict(req: &AppendRequest<'_>, actual: u64) -> Error {
    Error::Concurrency {
        entity_name: req.entity_name.to_owned(),
        entity_id: req.entity_id.to_owned(),
        expected: req.expected,
        actual,
    }
}

/// The plan for one append once [`settle`]d against the stream's current version `actual`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Append `req.events[skip..]` after version `after`; the first `skip` are stored at
    /// `stored`.
    Write {
        after: u64,
        skip: usize,
        stored: Vec<EventPlace>,
    },
    /// Everything is stored already: a retry of a commit that succeeded.
    Replayed(AppendOutcome),
    /// An append of no events (a guard on the stream's version) whose stream is at `actual`,
    /// which its expectation refuses. The unit fails on it unless the unit is a retry of one
    /// that was committed ([`check_guards`]): a guard held when the unit was first committed,
    /// and the stream may have moved on since.
    Guard { actual: u64 },
}

impl Plan {
    /// What an append that writes nothing reports: a replay's stored outcome, or the stream's
    /// version.
    pub(crate) fn into_unwritten(self) -> AppendOutcome {
        match self {
            Plan::Replayed(outcome) => outcome,
            Plan::Write { after, .. } => AppendOutcome::new(after, Vec::new()),
            Plan::Guard { actual } => AppendOutcome::new(actual, Vec::new()),
        }
    }
}

/// Fails a unit that is not a retry on the first guard its stream refused.
pub(crate) fn check_guards(
    unit: &UnitOfWork<'_>,
    plans: &[Plan],
    replay: bool,
) -> Result<(), Error> {
    if replay {
        return Ok(());
    }
    for (req, plan) in unit.appends().iter().zip(plans) {
        if let Plan::Guard { actual } = plan {
            return Err(stream_conflict(req, *actual));
        }
    }
    Ok(())
}

/// Decides what to do with an append: a conflict, a replay, or the events still to write.
pub(crate) fn plan(req: &AppendRequest<'_>, settled: Settled, actual: u64) -> Result<Plan, Error> {
    match settled {
        Settled::Fresh => {
            if !req.expected.matches(actual) {
                if req.events.is_empty() {
                    return Ok(Plan::Guard { actual });
                }
                return Err(stream_conflict(req, actual));
            }
            Ok(Plan::Write {
                after: actual,
                skip: 0,
                stored: Vec::new(),
            })
        }
        Settled::Stored {
            first_version,
            events,
        } => {
            let last = first_version + events.len() as u64 - 1;
            if events.len() == req.events.len() {
                return Ok(Plan::Replayed(AppendOutcome::new(last, events)));
            }
            // Part of the request is stored: it was written expecting the version before it,
            // and the rest goes right after it, or another writer got in between.
            if !req.expected.matches(first_version - 1) || actual != last {
                return Err(stream_conflict(req, actual));
            }
            Ok(Plan::Write {
                after: last,
                skip: events.len(),
                stored: events,
            })
        }
    }
}

/// A unit whose every non-empty append is stored already, in full, is a retry of a unit that
/// was committed: nothing of it is applied again.
pub(crate) fn is_replay(unit: &UnitOfWork<'_>, plans: &[Plan]) -> bool {
    let mut any = false;
    for (req, plan) in unit.appends().iter().zip(plans) {
        if req.events.is_empty() {
            continue;
        }
        match plan {
            Plan::Replayed(_) => any = true,
            Plan::Write { .. } | Plan::Guard { .. } => return false,
        }
    }
    any
}

/// The commit time of the first replayed event.
pub(crate) fn first_recorded(plans: &[Plan]) -> Option<Timestamp> {
    plans.iter().find_map(|p| match p {
        Plan::Replayed(o) => o.events.first().map(|e| e.recorded_at),
        Plan::Write { .. } | Plan::Guard { .. } => None,
    })
}
