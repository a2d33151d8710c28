//! Commit times (`recorded_at`): the store's clock, the same for every event of a commit, never
//! decreasing in log order, reported by the commit and read back the same everywhere.

use std::time::Duration;

use super::*;

/// The commit time (`recorded_at`) is the store's clock when it committed, not the writer's
/// creation time: an event created in 2001 keeps its creation time and is recorded now. Audit
/// and "what happened since" questions ask the store's time; the writer's may be anything.
pub async fn recorded_at_is_the_store_commit_time<S: Storage>(store: &S) {
    let id = unique_id("recorded-now");
    let stream = (ENTITY, id.as_str());
    let created = Timestamp::from_millis(978_307_200_000); // 2001-01-01T00:00:00Z
    let mut events = numbered(&id, 0, 2);
    for e in &mut events {
        e.event_created_at = created;
    }
    let before = Timestamp::now();
    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    let after = Timestamp::now();
    for place in &outcome.events {
        check_recent("an event created in 2001", place.recorded_at, before, after);
    }
    let stored = read(store, stream).await;
    check_events("an event created in 2001", &stored, &events, stream, 1);
    check_places("an event created in 2001", &stored, &outcome.events);
}

/// Commit times never decrease in log order, across commits and streams, while each commit's
/// events share one time, even when writers' creation times go backwards. A reader asking for
/// "everything recorded since t" stops at the first later time.
pub async fn recorded_times_never_decrease_in_log_order<S: Storage>(store: &S) {
    let entity = unique_name("recorded-order");
    let from = head(store).await;
    let ids: Vec<String> = (0..3).map(|_| unique_id("recorded-order")).collect();
    let mut versions = [0u64; 3];
    let mut times = std::collections::HashMap::new();
    for round in 0..15usize {
        let s = round % 3;
        let mut batch = numbered(&ids[s], versions[s] as usize, round % 3 + 1);
        for e in &mut batch {
            // Writers' clocks going backwards, one day per commit from 2030.
            e.event_created_at =
                Timestamp::from_millis(1_893_456_000_000 - round as i64 * 86_400_000);
        }
        let before = Timestamp::now();
        let outcome = append_ok(
            store,
            (&entity, &ids[s]),
            ExpectedVersion::after(versions[s]),
            &batch,
        )
        .await;
        check_recent(
            "a commit",
            outcome.events[0].recorded_at,
            before,
            Timestamp::now(),
        );
        versions[s] += batch.len() as u64;
        for (e, place) in batch.iter().zip(&outcome.events) {
            assert_eq!(
                place.recorded_at, outcome.events[0].recorded_at,
                "every event of one commit must carry the same commit time: {outcome:?}"
            );
            times.insert(e.event_id.clone(), place.recorded_at);
        }
        // Let the clock move, so that commits have different times to get in the wrong order.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (events, _) = read_to_head(
        store,
        "commit times",
        LogRequest::new(from, 4).filter(LogFilter::all().entity_name(&entity)),
    )
    .await;
    assert_eq!(
        events.len(),
        times.len(),
        "every event of the case must be in the log"
    );
    for w in events.windows(2) {
        assert!(
            w[0].recorded_at <= w[1].recorded_at,
            "commit times must never decrease in log order: position {} at {}, then position {} at {}",
            w[0].position,
            w[0].recorded_at,
            w[1].position,
            w[1].recorded_at
        );
    }
    for e in &events {
        assert_eq!(
            Some(&e.recorded_at),
            times.get(&e.event_id),
            "the log must show the commit time the append reported"
        );
    }
}

/// The commit time an outcome reports is the one stored with every event of the commit, and
/// reads back the same from `read_stream`, `visit_stream` (what a repository loads with) and
/// `read_log`: a unit's events all carry the unit's `recorded_at`.
pub async fn recorded_at_is_reported_and_read_back<S: Storage>(store: &S) {
    let entity = unique_name("recorded-back");
    let from = head(store).await;
    let [a, b] = ["recorded-a", "recorded-b"].map(unique_id);
    let (ea, eb) = (numbered(&a, 0, 2), numbered(&b, 0, 1));
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            &entity,
            &a,
            ExpectedVersion::NoStream,
            &ea,
        ))
        .append(AppendRequest::new(
            &entity,
            &b,
            ExpectedVersion::NoStream,
            &eb,
        ));
    let first = commit_ok(store, "a unit of two streams", &unit).await;
    let more = numbered(&a, 2, 1);
    let second = append_ok(store, (&entity, &a), ExpectedVersion::Exact(2), &more).await;
    let places = first
        .appends
        .iter()
        .flat_map(|o| &o.events)
        .chain(&second.events);
    for place in first.appends.iter().flat_map(|o| &o.events) {
        assert_eq!(
            place.recorded_at, first.recorded_at,
            "each event of a unit must carry the unit's commit time"
        );
    }
    let by_stream: Vec<Arc<StoredEvent>> = [
        read(store, (&entity, &a)).await,
        read(store, (&entity, &b)).await,
    ]
    .concat();
    let mut visited = Vec::new();
    for id in [&a, &b] {
        let collected = store
            .visit_stream(
                &entity,
                id,
                ReadRange::ALL,
                crate::storage::CollectEvents::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("visiting {entity} {id:?} failed: {e}"));
        visited.extend(collected.0);
    }
    let (logged, _) = read_to_head(
        store,
        "commit times in the log",
        LogRequest::new(from, LARGE).filter(LogFilter::all().entity_name(&entity)),
    )
    .await;
    let mut want: Vec<(u64, Timestamp)> = places.map(|p| (p.position, p.recorded_at)).collect();
    want.sort_unstable();
    for (what, events) in [
        ("read_stream", by_stream),
        ("visit_stream", visited),
        ("read_log", logged),
    ] {
        let mut got: Vec<(u64, Timestamp)> =
            events.iter().map(|e| (e.position, e.recorded_at)).collect();
        got.sort_unstable();
        assert_eq!(
            got, want,
            "{what} must show each event at the position and commit time its commit reported"
        );
    }
}
