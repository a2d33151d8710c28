//! The in-memory store: always compiled, for tests and examples.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::future::{Future, ready};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::event_id::EventId;

use super::{
    AppendOutcome, CommitOutcome, Document, DocumentOp, DocumentPage, DocumentRange, EventPlace,
    EventVisitor, LogCursor, LogEntry, LogPage, LogRequest, Plan, Prior, ReadRange, Storage,
    StoredEvent, UnitOfWork, check_guards, first_recorded, is_replay, plan, settle,
};
use crate::error::Error;
use crate::time::Timestamp;

/// An event store in process memory. Share it with `Arc`, or clone a repository over an
/// `Arc<MemoryStorage>`.
///
/// It enforces the same guarantees as the durable adapters (units of work, expected versions and
/// revisions, idempotent retries, cursors), unlike Ventyd's in-memory adapter, which ignored
/// `expectedVersion`. Reads hand out the stored events themselves (`Arc<StoredEvent>`), so
/// loading copies nothing. Commits take one write lock, so positions are handed out in commit
/// order and a cursor is a position.
#[derive(Debug)]
pub struct MemoryStorage {
    /// This store's identity in its cursors.
    origin: u64,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The global log; an event's position is its index + 1.
    log: Vec<Arc<StoredEvent>>,
    /// entity name -> entity id -> indexes into `log`, in version order.
    streams: HashMap<String, HashMap<String, Vec<usize>>>,
    /// event id -> index into `log`.
    ids: HashMap<EventId, usize>,
    /// collection -> key -> document.
    documents: HashMap<String, BTreeMap<String, Document>>,
    /// The commit time of the last commit, which later commits never go below.
    last_recorded: Option<Timestamp>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage {
            origin: crate::id::random_u64() | 1,
            inner: RwLock::default(),
        }
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of stored events.
    pub fn len(&self) -> usize {
        self.read().log.len()
    }

    /// `true` when no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied commit (commits check
        // everything before the first write), so a poisoned lock is still consistent.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn commit_now(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
        unit.check()?;
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;

        // Check everything first: nothing is written unless the whole unit can be.
        let mut plans = Vec::with_capacity(unit.appends().len());
        for req in unit.appends() {
            let settled = settle(req, |id| {
                Ok(inner.ids.get(id).map(|&i| {
                    let e = &inner.log[i];
                    Prior {
                        entity_name: Cow::Borrowed(e.entity_name.as_str()),
                        entity_id: Cow::Borrowed(e.entity_id.as_str()),
                        version: e.version,
                        event_name: Cow::Borrowed(e.event_name.as_str()),
                        body: Cow::Borrowed(e.body.as_str()),
                        place: EventPlace::new(e.position, e.recorded_at),
                    }
                }))
            })?;
            let actual = stream_len(inner, req.entity_name, req.entity_id);
            plans.push(plan(req, settled, actual)?);
        }
        let replay = is_replay(unit, &plans);
        check_guards(unit, &plans, replay)?;
        let mut revisions = Vec::with_capacity(unit.documents().len());
        for d in unit.documents() {
            let current = inner
                .documents
                .get(d.collection)
                .and_then(|c| c.get(d.key))
                .map(|doc| doc.revision);
            if replay {
                revisions.push(current);
                continue;
            }
            if !d.expected.matches(current) {
                return Err(d.conflict(current));
            }
            revisions.push(d.next_revision(current));
        }
        if replay {
            let recorded_at = first_recorded(&plans)
                .or(inner.last_recorded)
                .unwrap_or_else(Timestamp::now);
            let appends = plans.into_iter().map(Plan::into_unwritten).collect();
            return Ok(CommitOutcome::new(recorded_at, appends, revisions));
        }

        let recorded_at = Timestamp::now().max(inner.last_recorded.unwrap_or(Timestamp::MIN));
        inner.last_recorded = Some(recorded_at);
        let mut appends = Vec::with_capacity(plans.len());
        for (req, plan) in unit.appends().iter().zip(plans) {
            let (after, skip, mut places) = match plan {
                Plan::Replayed(_) | Plan::Guard { .. } => {
                    appends.push(plan.into_unwritten());
                    continue;
                }
                Plan::Write {
                    after,
                    skip,
                    stored,
                } => (after, skip, stored),
            };
            let Inner {
                log, streams, ids, ..
            } = &mut *inner;
            let by_id = match streams.get_mut(req.entity_name) {
                Some(by_id) => by_id,
                None => streams.entry(req.entity_name.to_owned()).or_default(),
            };
            let stream = match by_id.get_mut(req.entity_id) {
                Some(stream) => stream,
                None => by_id.entry(req.entity_id.to_owned()).or_default(),
            };
            places.reserve(req.events.len() - skip);
            for (i, e) in req.events[skip..].iter().enumerate() {
                let index = log.len();
                let position = index as u64 + 1;
                log.push(Arc::new(StoredEvent {
                    position,
                    event_id: e.event_id.clone(),
                    event_name: e.event_name.clone().into_owned(),
                    entity_name: req.entity_name.to_owned(),
                    entity_id: req.entity_id.to_owned(),
                    version: after + i as u64 + 1,
                    schema_version: e.schema_version,
                    event_created_at: e.event_created_at,
                    recorded_at,
                    metadata: e.metadata.clone(),
                    body: e.body.clone(),
                    checked_schema: e.checked_schema,
                }));
                stream.push(index);
                ids.insert(e.event_id.clone(), index);
                places.push(EventPlace::new(position, recorded_at));
            }
            appends.push(AppendOutcome::new(
                after + (req.events.len() - skip) as u64,
                places,
            ));
        }
        for (d, revision) in unit.documents().iter().zip(&revisions) {
            match (d.op, revision) {
                (DocumentOp::Put(body), Some(revision)) => {
                    let doc = Document::new(d.collection, d.key, *revision, body, recorded_at);
                    inner
                        .documents
                        .entry(d.collection.to_owned())
                        .or_default()
                        .insert(d.key.to_owned(), doc);
                }
                _ => {
                    if let Some(c) = inner.documents.get_mut(d.collection) {
                        c.remove(d.key);
                    }
                }
            }
        }
        Ok(CommitOutcome::new(recorded_at, appends, revisions))
    }
}

fn stream_len(inner: &Inner, entity_name: &str, entity_id: &str) -> u64 {
    inner
        .streams
        .get(entity_name)
        .and_then(|s| s.get(entity_id))
        .map_or(0, |s| s.len() as u64)
}

/// The indexes into the log of one stream's events in `range`.
fn stream_slice<'a>(
    inner: &'a Inner,
    entity_name: &str,
    entity_id: &str,
    range: ReadRange,
) -> &'a [usize] {
    let Some(indexes) = inner
        .streams
        .get(entity_name)
        .and_then(|s| s.get(entity_id))
    else {
        return &[];
    };
    let from = usize::try_from(range.from_version.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .min(indexes.len());
    let to = range
        .to_version
        .map_or(indexes.len(), |v| {
            usize::try_from(v).unwrap_or(usize::MAX).min(indexes.len())
        })
        .max(from);
    &indexes[from..to]
}

impl MemoryStorage {
    fn read_log_now(&self, request: &LogRequest) -> Result<LogPage, Error> {
        request.check()?;
        let (after, _) = request.after.parts_for(self.origin, "this memory store")?;
        let inner = self.read();
        let cursor = |position: u64| LogCursor::from_parts(self.origin, position, 0);
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(inner.log.len());
        let mut entries = Vec::new();
        for event in &inner.log[start..] {
            if !request
                .filter
                .matches(&event.entity_name, &event.event_name)
            {
                continue;
            }
            entries.push(LogEntry::new(cursor(event.position), Ok(event.clone())));
            if entries.len() == request.limit {
                let last = event.position;
                let at_head = last == inner.log.len() as u64;
                return Ok(LogPage::new(entries, cursor(last), at_head));
            }
        }
        let head = (inner.log.len() as u64).max(after);
        Ok(LogPage::new(entries, cursor(head), true))
    }
}

impl Storage for MemoryStorage {
    fn commit(
        &self,
        unit: &UnitOfWork<'_>,
    ) -> impl Future<Output = Result<CommitOutcome, Error>> + Send {
        ready(self.commit_now(unit))
    }

    fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> impl Future<Output = Result<V, Error>> + Send {
        // The visitor reads the stored events in place, under the read lock.
        let inner = self.read();
        let mut visitor = visitor;
        let indexes = stream_slice(&inner, entity_name, entity_id, range);
        visitor.expect(indexes.len());
        let result = indexes
            .iter()
            .try_for_each(|&i| visitor.visit(inner.log[i].as_event_ref()));
        ready(result.map(|()| visitor))
    }

    fn read_stream(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
    ) -> impl Future<Output = Result<Vec<Arc<StoredEvent>>, Error>> + Send {
        let inner = self.read();
        let events = stream_slice(&inner, entity_name, entity_id, range)
            .iter()
            .map(|&i| inner.log[i].clone())
            .collect();
        ready(Ok(events))
    }

    fn read_log(
        &self,
        request: &LogRequest,
    ) -> impl Future<Output = Result<LogPage, Error>> + Send {
        ready(self.read_log_now(request))
    }

    fn read_document(
        &self,
        collection: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Document>, Error>> + Send {
        let inner = self.read();
        let doc = inner
            .documents
            .get(collection)
            .and_then(|c| c.get(key))
            .cloned();
        ready(Ok(doc))
    }

    fn list_documents(
        &self,
        range: &DocumentRange,
    ) -> impl Future<Output = Result<DocumentPage, Error>> + Send {
        ready(list(&self.read(), range))
    }
}

fn list(inner: &Inner, range: &DocumentRange) -> Result<DocumentPage, Error> {
    if range.limit == 0 {
        return Err(crate::error::StorageError::invalid(
            "listing documents needs a limit of at least 1 per page",
        )
        .into());
    }
    let Some(collection) = inner.documents.get(&range.collection) else {
        return Ok(DocumentPage::new(Vec::new(), None));
    };
    use std::ops::Bound;
    let lower = match &range.after {
        Some(key) => Bound::Excluded(key.clone()),
        None => Bound::Unbounded,
    };
    let mut iter = collection.range((lower, Bound::Unbounded));
    let documents: Vec<Document> = iter
        .by_ref()
        .take(range.limit)
        .map(|(_, d)| d.clone())
        .collect();
    let next = match iter.next() {
        Some(_) => documents.last().map(|d| d.key.clone()),
        None => None,
    };
    Ok(DocumentPage::new(documents, next))
}
