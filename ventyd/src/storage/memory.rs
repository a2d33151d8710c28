//! The in-memory store: always compiled, for tests and examples.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use super::{
    AppendOutcome, AppendRequest, EventVisitor, ReadRange, Snapshot, Storage, StoredEvent,
};
use crate::error::{Error, StorageError};

/// An event store in process memory. Share it with `Arc`.
///
/// It enforces the same guarantees as the durable adapters (expected versions, atomic appends,
/// idempotent retries), unlike Ventyd's in-memory adapter, which ignored `expectedVersion`.
/// Reads hand out the stored events themselves (`Arc<StoredEvent>`), so loading copies nothing.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The global log; an event's position is its index + 1.
    log: Vec<Arc<StoredEvent>>,
    /// entity name -> entity id -> indexes into `log`, in version order.
    streams: HashMap<String, HashMap<String, Vec<usize>>>,
    /// event id -> index into `log`.
    ids: HashMap<Uuid, usize>,
    /// (entity name, entity id) -> the latest snapshot.
    snapshots: HashMap<(String, String), Snapshot>,
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

    /// `true` when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied append (appends check
        // everything before the first write), so a poisoned lock is still consistent.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn append_now(&self, req: AppendRequest<'_>) -> Result<AppendOutcome, Error> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let actual = inner
            .streams
            .get(req.entity_name)
            .and_then(|s| s.get(req.entity_id))
            .map_or(0, |s| s.len() as u64);

        if let Some(first) = req.events.first()
            && let Some(&at) = inner.ids.get(&first.event_id)
        {
            return replay(&inner, &req, at);
        }
        if !req.expected.matches(actual) {
            return Err(Error::Concurrency {
                entity_name: req.entity_name.to_owned(),
                entity_id: req.entity_id.to_owned(),
                expected: req.expected,
                actual,
            });
        }
        req.check_snapshot(actual)?;
        for (i, e) in req.events.iter().enumerate() {
            if inner.ids.contains_key(&e.event_id)
                || req.events[..i].iter().any(|o| o.event_id == e.event_id)
            {
                return Err(StorageError::msg(format!(
                    "event id {} is already stored; an event id may be used once",
                    e.event_id
                ))
                .into());
            }
        }

        let Inner {
            log,
            streams,
            ids,
            snapshots,
        } = &mut *inner;
        if let Some(snapshot) = req.snapshot {
            keep_latest(snapshots, snapshot);
        }
        let by_id = match streams.get_mut(req.entity_name) {
            Some(by_id) => by_id,
            None => streams.entry(req.entity_name.to_owned()).or_default(),
        };
        let stream = match by_id.get_mut(req.entity_id) {
            Some(stream) => stream,
            None => by_id.entry(req.entity_id.to_owned()).or_default(),
        };
        let mut positions = Vec::with_capacity(req.events.len());
        for (i, e) in req.events.iter().enumerate() {
            let index = log.len();
            log.push(Arc::new(StoredEvent {
                position: index as u64 + 1,
                event_id: e.event_id,
                event_name: e.event_name.clone().into_owned(),
                entity_name: req.entity_name.to_owned(),
                entity_id: req.entity_id.to_owned(),
                version: actual + i as u64 + 1,
                schema_version: e.schema_version,
                event_created_at: e.event_created_at,
                metadata: e.metadata.clone(),
                body: e.body.clone(),
                checked_schema: e.checked_schema,
            }));
            stream.push(index);
            ids.insert(e.event_id, index);
            positions.push(index as u64 + 1);
        }
        Ok(AppendOutcome {
            version: actual + req.events.len() as u64,
            positions,
        })
    }
}

fn keep_latest(snapshots: &mut HashMap<(String, String), Snapshot>, snapshot: &Snapshot) {
    let key = (snapshot.entity_name.clone(), snapshot.entity_id.clone());
    match snapshots.get(&key) {
        Some(held) if held.version > snapshot.version => {}
        _ => {
            snapshots.insert(key, snapshot.clone());
        }
    }
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

/// The first event id of an append is stored already: a retry of an append that succeeded.
/// It is accepted only when every event matches what is stored, in order, in the same stream.
fn replay(inner: &Inner, req: &AppendRequest<'_>, first: usize) -> Result<AppendOutcome, Error> {
    let mut positions = Vec::with_capacity(req.events.len());
    let mut version = 0;
    for (i, e) in req.events.iter().enumerate() {
        let stored = inner.log.get(first + i).filter(|s| {
            s.event_id == e.event_id
                && s.entity_name == req.entity_name
                && s.entity_id == req.entity_id
                && s.event_name == e.event_name
                && s.body == e.body
        });
        let Some(stored) = stored else {
            return Err(StorageError::msg(format!(
                "event id {} of {} {:?} is already stored with different content or in another stream",
                e.event_id, req.entity_name, req.entity_id
            ))
            .into());
        };
        positions.push(stored.position);
        version = stored.version;
    }
    Ok(AppendOutcome { version, positions })
}

impl Storage for MemoryStorage {
    fn append(
        &self,
        request: AppendRequest<'_>,
    ) -> impl Future<Output = Result<AppendOutcome, Error>> + Send {
        ready(self.append_now(request))
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

    fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Arc<StoredEvent>>, Error>> + Send {
        let inner = self.read();
        let start = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        let events = inner.log.iter().skip(start).take(limit).cloned().collect();
        ready(Ok(events))
    }

    fn read_snapshot(
        &self,
        entity_name: &str,
        entity_id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, Error>> + Send {
        let inner = self.read();
        let snapshot = inner
            .snapshots
            .get(&(entity_name.to_owned(), entity_id.to_owned()))
            .cloned();
        ready(Ok(snapshot))
    }

    fn write_snapshot(
        &self,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        keep_latest(&mut inner.snapshots, snapshot);
        ready(Ok(()))
    }
}
