//! Racing writers: to one stream or one document exactly one wins, many writers lose nothing,
//! and units over shared streams stay atomic under contention.

use std::collections::HashMap;

use tokio::sync::Barrier;

use super::*;
use crate::storage::DocumentWrite;

/// Sixteen tasks append two events each to one stream at version 1, all expecting version 1,
/// released together: exactly one wins, every other gets a conflict carrying `Exact(1)` and the
/// winner's version 3, and the stream holds the first event and the winner's two, gaplessly.
/// The expected-version check and the write must be one atomic step.
pub async fn concurrent_appends_to_one_stream_have_one_winner<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 16;
    let id = unique_id("race-exact");
    let first = numbered(&id, 0, 1);
    append_ok(store, (ENTITY, &id), ExpectedVersion::NoStream, &first).await;
    let results = race(store, &id, ExpectedVersion::Exact(1), TASKS).await;
    let stream = (ENTITY, id.as_str());
    let winner = check_one_winner(&results, stream, ExpectedVersion::Exact(1), 1);
    let sent: Vec<NewEvent> = first.iter().chain(&results[winner].0).cloned().collect();
    check_stream(store, "after the race", stream, &sent).await;
}

/// Sixteen tasks create the same new stream at once (`NoStream`), two events each: exactly one
/// wins, every other gets a conflict carrying `NoStream` and version 2. Two users signing up
/// with the same natural key race exactly like this.
pub async fn concurrent_creates_of_one_stream_have_one_winner<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 16;
    let id = unique_id("race-create");
    let results = race(store, &id, ExpectedVersion::NoStream, TASKS).await;
    let stream = (ENTITY, id.as_str());
    let winner = check_one_winner(&results, stream, ExpectedVersion::NoStream, 0);
    check_stream(store, "after the race", stream, &results[winner].0).await;
}

type RaceResult = (Vec<NewEvent>, Result<AppendOutcome, Error>);

/// `tasks` tasks append two events each to one stream expecting `expected`, released together.
async fn race<S: Storage + Clone>(
    store: &S,
    id: &str,
    expected: ExpectedVersion,
    tasks: usize,
) -> Vec<RaceResult> {
    let barrier = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = id.to_owned();
            tokio::spawn(async move {
                let events = numbered(&format!("{id}/task-{t}"), 0, 2);
                barrier.wait().await;
                let result = store
                    .append(AppendRequest::new(ENTITY, &id, expected, &events))
                    .await;
                (events, result)
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(join(h).await);
    }
    results
}

/// Checks that exactly one of the racers won (ending at `before + 2`) and every other got a
/// conflict naming that version; returns the winner's index.
#[track_caller]
fn check_one_winner(
    results: &[RaceResult],
    stream: (&str, &str),
    expected: ExpectedVersion,
    before: u64,
) -> usize {
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {} concurrent appends expecting {expected} may win, {} did: the version check and the write must be atomic",
        results.len(),
        winners.len()
    );
    let winner = winners[0];
    if let (_, Ok(outcome)) = &results[winner] {
        assert_eq!(outcome.version, before + 2, "the winner's outcome version");
    }
    for (i, (_, r)) in results.iter().enumerate() {
        if let Err(e) = r {
            assert_conflict(
                &format!("racer #{i} expecting {expected}"),
                e,
                stream,
                expected,
                before + 2,
            );
        }
    }
    winner
}

/// Eight tasks each append twenty-five single events to one stream with `ExpectedVersion::Any`,
/// all at once: every append succeeds, the stream holds all 200 events once each at versions
/// 1..=200, and each task's events keep their order. `Any` must still number events gaplessly
/// under contention.
pub async fn concurrent_appends_with_any_are_all_stored<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let id = unique_id("race-any");
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let events = numbered(&format!("{id}/task-{t}"), 0, EACH);
                barrier.wait().await;
                let mut versions = Vec::new();
                for e in &events {
                    let outcome = append_ok(
                        &store,
                        (ENTITY, &id),
                        ExpectedVersion::Any,
                        std::slice::from_ref(e),
                    )
                    .await;
                    versions.push(outcome.version);
                }
                (events, versions)
            })
        })
        .collect();
    let mut by_id: HashMap<EventId, (usize, usize, u64)> = HashMap::new();
    for (t, h) in handles.into_iter().enumerate() {
        let (events, versions) = join(h).await;
        for (k, (e, v)) in events.iter().zip(versions).enumerate() {
            by_id.insert(e.event_id.clone(), (t, k, v));
        }
    }
    check_contended_stream(store, &id, &by_id, TASKS * EACH).await;
}

/// Checks a stream written by several tasks: `total` events at versions 1..=total, each sent
/// event exactly once at the version its append reported, and each task's events in order.
async fn check_contended_stream<S: Storage>(
    store: &S,
    id: &str,
    by_id: &HashMap<EventId, (usize, usize, u64)>,
    total: usize,
) {
    let stored = read(store, (ENTITY, id)).await;
    assert_eq!(
        stored.len(),
        total,
        "{total} events were appended concurrently; the stream holds {}",
        stored.len()
    );
    let mut seen = HashSet::new();
    let mut next_of_task: HashMap<usize, usize> = HashMap::new();
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(
            e.version,
            i as u64 + 1,
            "versions must be gapless under contention"
        );
        assert!(
            seen.insert(e.event_id.clone()),
            "event {} is stored twice",
            e.event_id
        );
        let Some(&(task, k, version)) = by_id.get(&e.event_id) else {
            panic!(
                "event {} at version {} was never sent",
                e.event_id, e.version
            );
        };
        assert_eq!(
            e.version, version,
            "event {} must be stored at the version its append reported",
            e.event_id
        );
        let next = next_of_task.entry(task).or_default();
        assert_eq!(
            k, *next,
            "task {task}'s events must be stored in the order it appended them"
        );
        *next += 1;
    }
    if let Some(w) = stored.windows(2).find(|w| w[0].position >= w[1].position) {
        panic!(
            "positions must increase with the version: version {} at {}, version {} at {}",
            w[0].version, w[0].position, w[1].version, w[1].position
        );
    }
}

/// Eight tasks write twelve appends each (one to three events) to four streams of their own,
/// all at once: no event is lost, every stream is gapless and holds exactly its events, and
/// every position is unique and found once in the log. Parallel writers to different entities
/// must not block each other into errors or share positions.
pub async fn concurrent_appends_to_many_streams_lose_nothing<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 8;
    const STREAMS: usize = 4;
    const ROUNDS: usize = 12;
    let from = head(store).await;
    let run = unique_id("many");
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let run = run.clone();
            tokio::spawn(async move {
                let ids: Vec<String> = (0..STREAMS).map(|s| format!("{run}/{t}/{s}")).collect();
                let mut sent: Vec<Vec<NewEvent>> = vec![Vec::new(); STREAMS];
                let mut positions: Vec<(EventId, u64)> = Vec::new();
                barrier.wait().await;
                for round in 0..ROUNDS {
                    let s = round % STREAMS;
                    let batch = numbered(&ids[s], sent[s].len(), round % 3 + 1);
                    let outcome = append_ok(
                        &store,
                        (ENTITY, &ids[s]),
                        ExpectedVersion::after(sent[s].len() as u64),
                        &batch,
                    )
                    .await;
                    assert!(
                        positions
                            .last()
                            .is_none_or(|(_, p)| outcome.events[0].position > *p),
                        "one writer's appends must get increasing positions"
                    );
                    positions.extend(pairs(&batch, &outcome));
                    sent[s].extend(batch);
                }
                (ids, sent, positions)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        let (ids, sent, positions) = join(h).await;
        for (id, events) in ids.iter().zip(&sent) {
            check_stream(store, "after concurrent writers", (ENTITY, id), events).await;
        }
        all.extend(positions);
    }
    let unique: HashSet<u64> = all.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "every event must get its own position"
    );
    all.sort_by_key(|(_, p)| *p);
    check_log(store, "after concurrent writers", from, LARGE, &all).await;
}

/// Six tasks each append eight events to one stream, one at a time, retrying on conflict with
/// the version the conflict reported (as `Repository::update` does after a reload): the stream
/// ends at version 48 with every event once, each at the version its append reported, and each
/// task's events in order. Conflicts must store nothing, or retries would duplicate.
pub async fn concurrent_retry_loops_lose_and_duplicate_nothing<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 6;
    const EACH: usize = 8;
    let id = unique_id("retry-loop");
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let events = numbered(&format!("{id}/task-{t}"), 0, EACH);
                let mut versions = Vec::new();
                let mut conflicts = 0usize;
                barrier.wait().await;
                let mut expected = ExpectedVersion::NoStream;
                for e in &events {
                    loop {
                        let request =
                            AppendRequest::new(ENTITY, &id, expected, std::slice::from_ref(e));
                        match store.append(request).await {
                            Ok(outcome) => {
                                versions.push(outcome.version);
                                expected = ExpectedVersion::Exact(outcome.version);
                                break;
                            }
                            Err(Error::Concurrency { actual, .. }) => {
                                conflicts += 1;
                                assert!(
                                    conflicts < 100_000,
                                    "task {t} is stuck in conflicts on {id:?}"
                                );
                                expected = ExpectedVersion::after(actual);
                                tokio::task::yield_now().await;
                            }
                            Err(other) => panic!(
                                "task {t}: an append expecting {expected} failed with something else than a conflict: {other} ({other:?})"
                            ),
                        }
                    }
                }
                (events, versions)
            })
        })
        .collect();
    let mut by_id: HashMap<EventId, (usize, usize, u64)> = HashMap::new();
    for (t, h) in handles.into_iter().enumerate() {
        let (events, versions) = join(h).await;
        for (k, (e, v)) in events.iter().zip(versions).enumerate() {
            by_id.insert(e.event_id.clone(), (t, k, v));
        }
    }
    check_contended_stream(store, &id, &by_id, TASKS * EACH).await;
}

/// Sixteen tasks write one document at once, first all expecting it absent, then all expecting
/// revision 1: each time exactly one wins (revision 1, then 2) and every other gets a document
/// conflict carrying the winner's revision, and the document holds the winner's body. The
/// revision check and the write must be one atomic step.
pub async fn concurrent_writes_to_one_document_have_one_winner<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 16;
    let collection = unique_name("doc-race");
    for (expected, revision) in [
        (ExpectedRevision::Absent, 1),
        (ExpectedRevision::Exact(1), 2),
    ] {
        let barrier = Arc::new(Barrier::new(TASKS));
        let handles: Vec<_> = (0..TASKS)
            .map(|t| {
                let (store, barrier, collection) =
                    (store.clone(), barrier.clone(), collection.clone());
                tokio::spawn(async move {
                    let body = json!({ "task": t, "revision": revision }).to_string();
                    let unit = UnitOfWork::new().document(DocumentWrite::put(
                        &collection,
                        "k",
                        expected,
                        &body,
                    ));
                    barrier.wait().await;
                    let result = store.commit(&unit).await;
                    (body, result)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (t, h) in handles.into_iter().enumerate() {
            let (body, result) = join(h).await;
            match result {
                Ok(outcome) => winners.push((body, outcome)),
                Err(e) => assert_document_conflict(
                    &format!("racer #{t} expecting {expected}"),
                    &e,
                    (&collection, "k"),
                    expected,
                    Some(revision),
                ),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "exactly one of {TASKS} concurrent writes expecting {expected} may win, {} did",
            winners.len()
        );
        let (body, outcome) = &winners[0];
        assert_eq!(outcome.documents, [Some(revision)]);
        let doc = read_document(store, &collection, "k").await;
        check_document(
            "after the race",
            doc.as_ref(),
            (&collection, "k"),
            revision,
            body,
            outcome.recorded_at,
        );
    }
}

/// Six tasks each commit five units that append one event to each of two shared streams, both
/// at the versions they read, reloading on a conflict: both streams end with all thirty events,
/// in the same order of units in each, and the two events of a unit share a version and a
/// commit time. A store that checked and wrote the two streams one at a time would interleave
/// them differently.
pub async fn concurrent_units_over_two_streams_stay_atomic<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 6;
    const EACH: usize = 5;
    let [a, b] = ["units-a", "units-b"].map(unique_id);
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier, a, b) = (store.clone(), barrier.clone(), a.clone(), b.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut conflicts = 0usize;
                for k in 0..EACH {
                    let body = json!({ "task": t, "unit": k }).to_string();
                    let (ea, eb) = ([event_with("conformance:paired", &*body)], [event_with("conformance:paired", &*body)]);
                    loop {
                        let va = read(&store, (ENTITY, &a)).await.len() as u64;
                        let vb = read(&store, (ENTITY, &b)).await.len() as u64;
                        let unit = UnitOfWork::new()
                            .append(AppendRequest::new(ENTITY, &a, ExpectedVersion::after(va), &ea))
                            .append(AppendRequest::new(ENTITY, &b, ExpectedVersion::after(vb), &eb));
                        match store.commit(&unit).await {
                            Ok(_) => break,
                            Err(e) if e.is_concurrency() => {
                                conflicts += 1;
                                assert!(conflicts < 100_000, "task {t} is stuck in conflicts");
                                tokio::task::yield_now().await;
                            }
                            Err(e) => panic!("task {t}: a unit over two streams failed with something else than a conflict: {e} ({e:?})"),
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        join(h).await;
    }
    let (sa, sb) = (
        read(store, (ENTITY, &a)).await,
        read(store, (ENTITY, &b)).await,
    );
    assert_eq!(
        (sa.len(), sb.len()),
        (TASKS * EACH, TASKS * EACH),
        "every unit must have stored one event in each stream"
    );
    for (i, (x, y)) in sa.iter().zip(&sb).enumerate() {
        assert_eq!(x.version, i as u64 + 1, "versions must be gapless");
        assert!(
            same_json(&x.body, &y.body) && x.recorded_at == y.recorded_at,
            "version {} of both streams must come from one unit (same body, same commit time): {} at {} and {} at {}",
            x.version,
            x.body,
            x.recorded_at,
            y.body,
            y.recorded_at
        );
    }
    let units: HashSet<&str> = sa.iter().map(|e| e.body.as_str()).collect();
    assert_eq!(units.len(), TASKS * EACH, "each unit must be stored once");
}
