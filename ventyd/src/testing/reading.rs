//! Shared helpers for reading: streams checked field by field, the log paged from a cursor,
//! documents read and listed.

use super::*;
use crate::storage::DocumentRange;

// ---------------------------------------------------------------------------------------------
// Reading streams
// ---------------------------------------------------------------------------------------------

pub(super) async fn read_range<S: Storage>(
    store: &S,
    (name, id): (&str, &str),
    range: ReadRange,
) -> Vec<Arc<StoredEvent>> {
    store
        .read_stream(name, id, range)
        .await
        .unwrap_or_else(|e| panic!("reading {name} {id:?} ({range:?}) failed: {e} ({e:?})"))
}

pub(super) async fn read<S: Storage>(store: &S, stream: (&str, &str)) -> Vec<Arc<StoredEvent>> {
    read_range(store, stream, ReadRange::ALL).await
}

/// Checks every field of a stored event against the event that was sent.
#[track_caller]
pub(super) fn check_event(
    ctx: &str,
    stored: &StoredEvent,
    sent: &NewEvent,
    (name, id): (&str, &str),
    version: u64,
) {
    assert_eq!(
        stored.event_id, sent.event_id,
        "{ctx}: event at version {version} of {name} {id:?} has the wrong id"
    );
    let what = format!(
        "{ctx}: event {} (version {version} of {name} {id:?})",
        sent.event_id
    );
    assert_eq!(stored.event_name, sent.event_name, "{what}: event name");
    assert_eq!(stored.entity_name, name, "{what}: entity name");
    assert_eq!(stored.entity_id, id, "{what}: entity id");
    assert_eq!(stored.version, version, "{what}: version");
    assert_eq!(
        stored.schema_version, sent.schema_version,
        "{what}: schema version"
    );
    assert_eq!(
        stored.event_created_at.as_millis(),
        sent.event_created_at.as_millis(),
        "{what}: creation time (milliseconds since the epoch; sent {}, stored {})",
        sent.event_created_at,
        stored.event_created_at
    );
    assert_eq!(
        stored.metadata.as_deref(),
        sent.metadata.as_deref(),
        "{what}: metadata"
    );
    assert_eq!(
        stored.checked_schema, sent.checked_schema,
        "{what}: the record of the schema the body was checked against"
    );
    assert!(
        same_json(&stored.body, &sent.body),
        "{what}: the body must come back as the JSON it was given\n  sent:   {}\n  stored: {}",
        preview(&sent.body),
        preview(&stored.body)
    );
}

/// Checks that `stored` is exactly `sent`, at versions `first_version..`, with positions
/// increasing and commit times never decreasing with the version (a stream's versions are in
/// commit order).
#[track_caller]
pub(super) fn check_events(
    ctx: &str,
    stored: &[Arc<StoredEvent>],
    sent: &[NewEvent],
    stream: (&str, &str),
    first_version: u64,
) {
    assert_eq!(
        stored.len(),
        sent.len(),
        "{ctx}: expected {} event(s) of {} {:?} from version {first_version}, read {}: versions {:?}",
        sent.len(),
        stream.0,
        stream.1,
        stored.len(),
        stored.iter().map(|e| e.version).collect::<Vec<_>>()
    );
    for (i, (s, e)) in stored.iter().zip(sent).enumerate() {
        check_event(ctx, s, e, stream, first_version + i as u64);
    }
    for w in stored.windows(2) {
        assert!(
            w[0].position < w[1].position,
            "{ctx}: positions must increase with the version in {} {:?}: version {} is at {}, version {} at {}",
            stream.0,
            stream.1,
            w[0].version,
            w[0].position,
            w[1].version,
            w[1].position
        );
        assert!(
            w[0].recorded_at <= w[1].recorded_at,
            "{ctx}: commit times must not decrease with the version in {} {:?}: version {} at {}, version {} at {}",
            stream.0,
            stream.1,
            w[0].version,
            w[0].recorded_at,
            w[1].version,
            w[1].recorded_at
        );
    }
}

/// Checks that stored events sit where the store said it put them (position and commit time).
#[track_caller]
pub(super) fn check_places(ctx: &str, stored: &[Arc<StoredEvent>], places: &[EventPlace]) {
    let read: Vec<EventPlace> = stored
        .iter()
        .map(|e| EventPlace::new(e.position, e.recorded_at))
        .collect();
    assert_eq!(
        read, places,
        "{ctx}: events must read back at the positions and commit times the commit reported"
    );
}

/// Reads the whole stream and checks it is exactly `sent`, from version 1.
pub(super) async fn check_stream<S: Storage>(
    store: &S,
    ctx: &str,
    stream: (&str, &str),
    sent: &[NewEvent],
) {
    let stored = read(store, stream).await;
    check_events(ctx, &stored, sent, stream, 1);
}

// ---------------------------------------------------------------------------------------------
// Reading the log
// ---------------------------------------------------------------------------------------------

pub(super) async fn read_log<S: Storage>(store: &S, ctx: &str, request: &LogRequest) -> LogPage {
    store.read_log(request).await.unwrap_or_else(|e| {
        panic!(
            "{ctx}: reading the log after {} (limit {}, {:?}) failed: {e} ({e:?})",
            request.after, request.limit, request.filter
        )
    })
}

/// A cursor at the head of the log: resuming from it sees what is committed after this call.
///
/// It reads with a filter no event passes, so the store skips through the log itself and the
/// case handles no entry; a store may take several pages to get there.
pub(super) async fn head<S: Storage>(store: &S) -> LogCursor {
    let nothing = LogFilter::all().event_name(unique_name("never-written"));
    let mut cursor = LogCursor::START;
    for _ in 0..MAX_PAGES {
        let request = LogRequest::new(cursor, LARGE).filter(nothing.clone());
        let page = read_log(store, "finding the head of the log", &request).await;
        assert!(
            page.entries.is_empty(),
            "a log read filtered on an event name nobody writes returned {} entries (positions {:?})",
            page.entries.len(),
            page.entries
                .iter()
                .map(|e| e.position())
                .collect::<Vec<_>>()
        );
        cursor = page.cursor;
        if page.at_head {
            return cursor;
        }
    }
    panic!("a filtered read of the log never reached its head in {MAX_PAGES} pages")
}

/// An event found in the log, with the cursor that resumes right after it.
pub(super) struct Logged {
    pub(super) event: Arc<StoredEvent>,
    pub(super) cursor: LogCursor,
}

/// Pages through the log as `request` says (from its cursor, by its limit, through its filter),
/// checking every page (at most `limit` entries, each readable and passing the filter, positions
/// strictly increasing across pages, no event twice), and returns the events whose ids are in
/// `ids`, in log order. Stops once all of them have been seen or the log's head is reached.
pub(super) async fn scan_log<S: Storage>(
    store: &S,
    ctx: &str,
    request: LogRequest,
    ids: &HashSet<EventId>,
) -> Vec<Logged> {
    let mut request = request;
    let limit = request.limit;
    let mut found: Vec<Logged> = Vec::new();
    let mut seen = HashSet::new();
    let mut last: Option<u64> = None;
    for _ in 0..MAX_PAGES {
        let page = read_log(store, ctx, &request).await;
        assert!(
            page.entries.len() <= limit,
            "{ctx}: a log page of limit {limit} holds {} entries",
            page.entries.len()
        );
        for entry in page.entries {
            let position = entry.position();
            let event = entry.event.unwrap_or_else(|c| {
                panic!(
                    "{ctx}: the log reports a row it cannot read at position {position}: {}",
                    c.error
                )
            });
            if let Some(last) = last {
                assert!(
                    position > last,
                    "{ctx}: the log must be in strictly increasing position order (paging by {limit}), but {position} came after {last}"
                );
            }
            last = Some(position);
            assert!(
                request
                    .filter
                    .matches(&event.entity_name, &event.event_name),
                "{ctx}: the read filtered on {:?} returned {} {:?} {:?}",
                request.filter,
                event.entity_name,
                event.entity_id,
                event.event_name
            );
            if ids.contains(&event.event_id) {
                assert!(
                    seen.insert(event.event_id.clone()),
                    "{ctx}: event {} appears twice in the log (paging by {limit})",
                    event.event_id
                );
                found.push(Logged {
                    event,
                    cursor: entry.cursor,
                });
            }
        }
        request.after = page.cursor;
        if seen.len() == ids.len() || page.at_head {
            return found;
        }
    }
    panic!("{ctx}: the log did not reach its head in {MAX_PAGES} pages of {limit}")
}

/// Checks that the log after `from` holds `expected` (and no other event with one of their
/// ids), in this order and at these positions, paging by `limit`.
pub(super) async fn check_log<S: Storage>(
    store: &S,
    ctx: &str,
    from: LogCursor,
    limit: usize,
    expected: &[(EventId, u64)],
) {
    let ids: HashSet<EventId> = expected.iter().map(|(id, _)| id.clone()).collect();
    let found = scan_log(store, ctx, LogRequest::new(from, limit), &ids).await;
    let found: Vec<(EventId, u64)> = found
        .iter()
        .map(|l| (l.event.event_id.clone(), l.event.position))
        .collect();
    assert_eq!(
        found, expected,
        "{ctx}: reading the log by pages of {limit} must return these events (id, position) in this order, with no gap and no repeat"
    );
}

/// Checks that none of `ids` is in the log after `from`.
pub(super) async fn check_absent_from_log<S: Storage>(
    store: &S,
    ctx: &str,
    from: LogCursor,
    ids: &[EventId],
) {
    let ids: HashSet<EventId> = ids.iter().cloned().collect();
    let found = scan_log(store, ctx, LogRequest::new(from, LARGE), &ids).await;
    assert!(
        found.is_empty(),
        "{ctx}: events of a rejected write are in the log: {:?}",
        found
            .iter()
            .map(|l| (
                l.event.event_id.clone(),
                &l.event.entity_id,
                l.event.version
            ))
            .collect::<Vec<_>>()
    );
}

/// Reads the log as `request` says until the head, checking every page (at most `limit`
/// entries, each readable and passing the filter, positions increasing), and returns the events
/// and the cursor after the last page. For reads filtered on names of the case's own, so that
/// what comes back is the case's alone.
pub(super) async fn read_to_head<S: Storage>(
    store: &S,
    ctx: &str,
    request: LogRequest,
) -> (Vec<Arc<StoredEvent>>, LogCursor) {
    let mut request = request;
    let mut events: Vec<Arc<StoredEvent>> = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = read_log(store, ctx, &request).await;
        assert!(
            page.entries.len() <= request.limit,
            "{ctx}: a log page of limit {} holds {} entries",
            request.limit,
            page.entries.len()
        );
        let (cursor, at_head) = (page.cursor, page.at_head);
        for entry in page.entries {
            let position = entry.position();
            let event = entry.event.unwrap_or_else(|c| {
                panic!(
                    "{ctx}: the log reports a row it cannot read at position {position}: {}",
                    c.error
                )
            });
            assert!(
                request
                    .filter
                    .matches(&event.entity_name, &event.event_name),
                "{ctx}: the read filtered on {:?} returned {} {:?} {:?}",
                request.filter,
                event.entity_name,
                event.entity_id,
                event.event_name
            );
            if let Some(last) = events.last() {
                assert!(
                    position > last.position,
                    "{ctx}: positions must increase along the log, but {position} came after {}",
                    last.position
                );
            }
            events.push(event);
        }
        request.after = cursor;
        if at_head {
            return (events, cursor);
        }
    }
    panic!("{ctx}: the log did not reach its head in {MAX_PAGES} pages")
}

pub(super) fn ids_and_positions(events: &[Arc<StoredEvent>]) -> Vec<(EventId, u64)> {
    events
        .iter()
        .map(|e| (e.event_id.clone(), e.position))
        .collect()
}

/// The events' ids paired with the positions an outcome reported for them.
pub(super) fn pairs(events: &[NewEvent], outcome: &AppendOutcome) -> Vec<(EventId, u64)> {
    events
        .iter()
        .map(|e| e.event_id.clone())
        .zip(outcome.positions())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------------

pub(super) async fn read_document<S: Storage>(
    store: &S,
    collection: &str,
    key: &str,
) -> Option<Document> {
    store
        .read_document(collection, key)
        .await
        .unwrap_or_else(|e| {
            panic!("reading document {key:?} of {collection:?} failed: {e} ({e:?})")
        })
}

/// Checks a document read back: where it is, its revision, its body (as JSON) and its time.
#[track_caller]
pub(super) fn check_document(
    ctx: &str,
    doc: Option<&Document>,
    (collection, key): (&str, &str),
    revision: u64,
    body: &str,
    updated_at: Timestamp,
) {
    let Some(doc) = doc else {
        panic!(
            "{ctx}: document {key:?} of {collection:?} must exist at revision {revision}, but it reads as absent"
        );
    };
    assert_eq!(
        (doc.collection.as_str(), doc.key.as_str()),
        (collection, key),
        "{ctx}: the document must carry its collection and key"
    );
    assert_eq!(
        doc.revision, revision,
        "{ctx}: document {key:?} of {collection:?} must be at revision {revision} (1 when first written, one more per write)"
    );
    assert!(
        same_json(&doc.body, body),
        "{ctx}: document {key:?} of {collection:?} must hold the JSON it was given\n  sent:   {}\n  stored: {}",
        preview(body),
        preview(&doc.body)
    );
    assert_eq!(
        doc.updated_at, updated_at,
        "{ctx}: a document's time must be the commit time of its last write"
    );
}

/// Lists a whole collection by pages of `limit`, checking each page: at most `limit` documents,
/// in strictly increasing key order across pages, each of this collection; only the last page
/// may be empty, and it has no `next`.
pub(super) async fn list_all<S: Storage>(
    store: &S,
    ctx: &str,
    collection: &str,
    limit: usize,
) -> Vec<Document> {
    let mut all: Vec<Document> = Vec::new();
    let mut range = DocumentRange::new(collection, limit);
    for _ in 0..MAX_PAGES {
        let page = store.list_documents(&range).await.unwrap_or_else(|e| {
            panic!(
                "{ctx}: listing {collection:?} after {:?} by {limit} failed: {e} ({e:?})",
                range.after
            )
        });
        assert!(
            page.documents.len() <= limit,
            "{ctx}: a listing page of limit {limit} holds {} documents",
            page.documents.len()
        );
        for doc in page.documents {
            assert_eq!(
                doc.collection, collection,
                "{ctx}: a listing of {collection:?} returned a document of {:?}",
                doc.collection
            );
            if let Some(last) = all.last() {
                assert!(
                    doc.key.as_bytes() > last.key.as_bytes(),
                    "{ctx}: listing by {limit} must go in strictly increasing key order (UTF-8 bytes) without repeats, but {:?} came after {:?}",
                    doc.key,
                    last.key
                );
            }
            all.push(doc);
        }
        match page.next {
            Some(next) => range = range.after(next),
            None => return all,
        }
    }
    panic!("{ctx}: listing {collection:?} by {limit} did not end in {MAX_PAGES} pages")
}
