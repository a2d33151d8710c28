//! Readers while writers commit: a stream or the log read in the middle of commits shows each
//! commit whole, and a log reader resuming from saved cursors sees every event exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;

/// While a writer appends thirty batches of ten events to one stream, a reader reads the stream
/// and the log over and over: every read holds a multiple of ten of the stream's events (never
/// half a batch), at versions 1..n, never fewer than the read before. Loading an entity in the
/// middle of another's commit must see the commit whole or not at all.
pub async fn readers_never_see_half_a_batch<S: Storage + Clone>(store: &S) {
    const BATCHES: usize = 30;
    const SIZE: usize = 10;
    let entity = unique_name("half-batch");
    let id = unique_id("half-batch");
    let from = head(store).await;
    append_ok(
        store,
        (&entity, &id),
        ExpectedVersion::NoStream,
        &numbered(&id, 0, SIZE),
    )
    .await;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let (entity, id) = (entity.clone(), id.clone());
        let done = done.clone();
        tokio::spawn(async move {
            let mine = LogFilter::all().entity_name(&entity);
            let (mut reads, mut in_stream, mut in_log) = (0usize, SIZE, SIZE);
            loop {
                let finished = done.load(Ordering::Acquire);
                let events = read(&store, (&entity, &id)).await;
                assert!(
                    events.len() % SIZE == 0,
                    "read #{reads} of the stream saw {} events: part of a {SIZE}-event append",
                    events.len()
                );
                assert!(
                    events.len() >= in_stream,
                    "read #{reads} saw {} events after an earlier read saw {in_stream}",
                    events.len()
                );
                for (i, e) in events.iter().enumerate() {
                    assert_eq!(
                        e.version,
                        i as u64 + 1,
                        "read #{reads}: versions must be 1..n"
                    );
                }
                in_stream = events.len();
                let (log, _) = read_to_head(
                    &store,
                    "the log while a writer appends",
                    LogRequest::new(from, LARGE).filter(mine.clone()),
                )
                .await;
                assert!(
                    log.len() % SIZE == 0,
                    "read #{reads} of the log saw {} of the stream's events: part of a {SIZE}-event append",
                    log.len()
                );
                assert!(
                    log.len() >= in_log,
                    "the log lost events: {} after {in_log}",
                    log.len()
                );
                in_log = log.len();
                reads += 1;
                if finished {
                    break;
                }
                tokio::task::yield_now().await;
            }
            (reads, in_stream, in_log)
        })
    };
    for b in 1..BATCHES {
        append_ok(
            store,
            (&entity, &id),
            ExpectedVersion::Exact((b * SIZE) as u64),
            &numbered(&id, b * SIZE, SIZE),
        )
        .await;
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::Release);
    let (reads, in_stream, in_log) = join(reader).await;
    assert_eq!(
        (in_stream, in_log),
        (BATCHES * SIZE, BATCHES * SIZE),
        "the reader's last read ({reads} reads in all) came after the writer finished and must see every event"
    );
}

/// Eight writer tasks make many small commits to streams of their own while a reader pages the
/// log by three, saving its cursor as text after every page and parsing it back for the next
/// (as a projection checkpoints), until the writers are done and it reaches the head: it sees
/// every event of the case exactly once, each stream's events in version order. Positions
/// handed out to transactions that commit out of order must not let a reader skip an event.
pub async fn a_log_reader_sees_every_event_once_while_writers_commit<S: Storage + Clone>(
    store: &S,
) {
    const WRITERS: usize = 8;
    const STREAMS: usize = 3;
    const COMMITS: usize = 15;
    let entity = unique_name("log-reader");
    let from = head(store).await;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, entity, done) = (store.clone(), entity.clone(), done.clone());
        tokio::spawn(async move {
            let filter = LogFilter::all().entity_name(&entity);
            let mut saved = from.to_string();
            let mut seen: Vec<Arc<StoredEvent>> = Vec::new();
            for _ in 0..MAX_PAGES {
                let finished = done.load(Ordering::Acquire);
                let cursor: LogCursor = saved
                    .parse()
                    .unwrap_or_else(|e| panic!("the saved cursor {saved:?} does not parse: {e}"));
                let request = LogRequest::new(cursor, 3).filter(filter.clone());
                let page = read_log(&store, "the reader", &request).await;
                assert!(
                    page.entries.len() <= 3,
                    "a page of limit 3 holds {} entries",
                    page.entries.len()
                );
                let at_head = page.at_head;
                saved = page.cursor.to_string();
                for entry in page.entries {
                    let event = entry.event.unwrap_or_else(|c| {
                        panic!("the reader found an unreadable row: {}", c.error)
                    });
                    assert_eq!(
                        event.entity_name, entity,
                        "the reader's filter let through another entity"
                    );
                    seen.push(event);
                }
                if finished && at_head {
                    return seen;
                }
                if at_head {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            panic!("the reader did not reach the head in {MAX_PAGES} pages")
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (store, entity) = (store.clone(), entity.clone());
            tokio::spawn(async move {
                let ids: Vec<String> = (0..STREAMS)
                    .map(|_| unique_id(&format!("log-reader-{t}")))
                    .collect();
                let mut versions = [0u64; STREAMS];
                let mut sent: Vec<(EventId, String, u64)> = Vec::new();
                for c in 0..COMMITS {
                    let s = c % STREAMS;
                    let batch = numbered(&ids[s], versions[s] as usize, c % 2 + 1);
                    append_ok(
                        &store,
                        (&entity, &ids[s]),
                        ExpectedVersion::after(versions[s]),
                        &batch,
                    )
                    .await;
                    for e in &batch {
                        versions[s] += 1;
                        sent.push((e.event_id.clone(), ids[s].clone(), versions[s]));
                    }
                    tokio::task::yield_now().await;
                }
                sent
            })
        })
        .collect();
    // A writer of another entity name, whose events the reader's filter must leave out.
    let decoy = {
        let store = store.clone();
        tokio::spawn(async move {
            let (name, id) = (
                unique_name("log-reader-decoy"),
                unique_id("log-reader-decoy"),
            );
            for v in 0..COMMITS {
                append_ok(
                    &store,
                    (&name, &id),
                    ExpectedVersion::after(v as u64),
                    &numbered(&id, v, 1),
                )
                .await;
                tokio::task::yield_now().await;
            }
        })
    };
    let mut sent: HashMap<EventId, (String, u64)> = HashMap::new();
    join(decoy).await;
    for w in writers {
        for (event_id, stream, version) in join(w).await {
            sent.insert(event_id, (stream, version));
        }
    }
    done.store(true, Ordering::Release);
    let seen = join(reader).await;
    let mut once = HashSet::new();
    let mut next_version: HashMap<&str, u64> = HashMap::new();
    for e in &seen {
        assert!(
            once.insert(e.event_id.clone()),
            "the reader saw event {} twice (version {} of {:?})",
            e.event_id,
            e.version,
            e.entity_id
        );
        let Some((stream, version)) = sent.get(&e.event_id) else {
            panic!(
                "the reader saw event {} that no writer of the case sent",
                e.event_id
            );
        };
        assert_eq!(
            (&e.entity_id, e.version),
            (stream, *version),
            "event {} must be where its writer put it",
            e.event_id
        );
        let next = next_version.entry(stream.as_str()).or_insert(1);
        assert_eq!(
            e.version, *next,
            "the reader must see {:?}'s events in version order, without gaps",
            e.entity_id
        );
        *next += 1;
    }
    assert_eq!(
        seen.len(),
        sent.len(),
        "the reader must see every one of the {} events the writers committed, and saw {}",
        sent.len(),
        seen.len()
    );
}
