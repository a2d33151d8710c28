//! Units of work: appends to several streams and document writes, committed together or not at
//! all, guarded by empty appends, and retried as a whole.

use super::*;
use crate::storage::DocumentWrite;

const ORDER: &str = "conformance_order";
const STOCK: &str = "conformance_stock";

/// A unit appending to two streams of different entity names (an order placed and stock
/// reserved) stores both: each at its version, the unit's events at increasing positions after
/// everything committed before, and every event of the unit with one commit time, the one the
/// outcome reports, read back the same from the streams and the log. Cross-aggregate
/// invariants rest on this.
pub async fn a_unit_commits_streams_of_different_entity_names_atomically<S: Storage>(store: &S) {
    let from = head(store).await;
    let order = unique_id("unit-order");
    let stock = unique_id("unit-stock");
    let initial = numbered(&stock, 0, 1);
    let first = append_ok(store, (STOCK, &stock), ExpectedVersion::NoStream, &initial).await;
    let placed = numbered(&order, 0, 2);
    let reserved = numbered(&stock, 1, 2);
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ORDER,
            &order,
            ExpectedVersion::NoStream,
            &placed,
        ))
        .append(AppendRequest::new(
            STOCK,
            &stock,
            ExpectedVersion::Exact(1),
            &reserved,
        ));
    let before = Timestamp::now();
    let outcome = commit_ok(store, "a unit over two entity names", &unit).await;
    let after = Timestamp::now();
    assert_eq!(
        (outcome.appends[0].version, outcome.appends[1].version),
        (2, 3),
        "each append of the unit must report its stream's version after it"
    );
    let places: Vec<EventPlace> = outcome
        .appends
        .iter()
        .flat_map(|a| a.events.iter().copied())
        .collect();
    let mut last = first.events[0].position;
    for p in &places {
        assert!(
            p.position > last,
            "the unit's events must get increasing positions, in the unit's order, after everything committed before: {places:?} after {last}"
        );
        last = p.position;
        assert_eq!(
            p.recorded_at, outcome.recorded_at,
            "every event of one unit must carry the unit's commit time: {outcome:?}"
        );
    }
    check_recent("a unit's commit time", outcome.recorded_at, before, after);

    let orders = read(store, (ORDER, &order)).await;
    check_events("the order stream", &orders, &placed, (ORDER, &order), 1);
    check_places("the order stream", &orders, &outcome.appends[0].events);
    let stocks = read(store, (STOCK, &stock)).await;
    check_events(
        "the stock stream",
        &stocks[1..],
        &reserved,
        (STOCK, &stock),
        2,
    );
    check_places("the stock stream", &stocks[1..], &outcome.appends[1].events);

    let mut expected = pairs(&initial, &first);
    expected.extend(pairs(&placed, &outcome.appends[0]));
    expected.extend(pairs(&reserved, &outcome.appends[1]));
    check_log(
        store,
        "a unit over two entity names",
        from,
        LARGE,
        &expected,
    )
    .await;
}

/// A unit of three appends whose second expects the wrong version fails as a whole with
/// `Error::Concurrency` naming that stream, the version it expected and the one it found; no
/// event of any of the three and not its document is stored, and its ids stay free (the corrected
/// unit commits). A transfer that debited one account and failed to credit the other would
/// lose money.
pub async fn a_conflict_on_one_append_stores_nothing_of_the_unit<S: Storage>(store: &S) {
    let from = head(store).await;
    let [a, b, c] = ["unit-a", "unit-b", "unit-c"].map(unique_id);
    let collection = unique_name("unit-conflict");
    let b_first = numbered(&b, 0, 2);
    append_ok(store, (ENTITY, &b), ExpectedVersion::NoStream, &b_first).await;
    let (ea, eb, ec) = (numbered(&a, 0, 2), numbered(&b, 2, 1), numbered(&c, 0, 1));
    let unit = |b_expected| {
        UnitOfWork::new()
            .append(AppendRequest::new(
                ENTITY,
                &a,
                ExpectedVersion::NoStream,
                &ea,
            ))
            .append(AppendRequest::new(ENTITY, &b, b_expected, &eb))
            .append(AppendRequest::new(
                ENTITY,
                &c,
                ExpectedVersion::NoStream,
                &ec,
            ))
            .document(DocumentWrite::put(
                &collection,
                "k",
                ExpectedRevision::Absent,
                "{}",
            ))
    };
    let ctx = "a unit whose second append expects version 1 of a stream at 2";
    let err = commit_err(store, ctx, &unit(ExpectedVersion::Exact(1))).await;
    assert_conflict(ctx, &err, (ENTITY, &b), ExpectedVersion::Exact(1), 2);
    assert!(
        read(store, (ENTITY, &a)).await.is_empty(),
        "{ctx}: the first append must not be stored"
    );
    assert!(
        read(store, (ENTITY, &c)).await.is_empty(),
        "{ctx}: the third append must not be stored"
    );
    check_stream(store, ctx, (ENTITY, &b), &b_first).await;
    assert_eq!(
        read_document(store, &collection, "k").await,
        None,
        "{ctx}: the unit's document must not be written"
    );
    let ids: Vec<EventId> = ea
        .iter()
        .chain(&eb)
        .chain(&ec)
        .map(|e| e.event_id.clone())
        .collect();
    check_absent_from_log(store, ctx, from, &ids).await;

    let outcome = commit_ok(
        store,
        "the corrected unit",
        &unit(ExpectedVersion::Exact(2)),
    )
    .await;
    assert_eq!(outcome.documents, [Some(1)]);
    check_stream(store, "the corrected unit", (ENTITY, &a), &ea).await;
    check_stream(store, "the corrected unit", (ENTITY, &c), &ec).await;
}

/// A unit whose document write expects the wrong revision (a put, or a delete) fails as a whole
/// with `Error::DocumentConflict` naming the collection, the key, the revision expected and the
/// one found: its appends and its other document writes are not stored. An inline view that
/// lost a race must not let the events it describes through without it.
pub async fn a_document_conflict_fails_the_whole_unit<S: Storage>(store: &S) {
    let from = head(store).await;
    let collection = unique_name("unit-doc-conflict");
    let existing = (collection.as_str(), "existing");
    let initial = r#"{"v":1}"#;
    let unit = UnitOfWork::new().document(DocumentWrite::put(
        existing.0,
        existing.1,
        ExpectedRevision::Absent,
        initial,
    ));
    let stored = commit_ok(store, "writing the document", &unit).await;
    let [a, b] = ["unit-doc-a", "unit-doc-b"].map(unique_id);
    let (ea, eb) = (numbered(&a, 0, 2), numbered(&b, 0, 1));
    for (what, write) in [
        (
            "a put expecting revision 5",
            DocumentWrite::put(existing.0, existing.1, ExpectedRevision::Exact(5), "{}"),
        ),
        (
            "a delete expecting revision 2",
            DocumentWrite::delete(existing.0, existing.1, ExpectedRevision::Exact(2)),
        ),
    ] {
        let unit = UnitOfWork::new()
            .append(AppendRequest::new(
                ENTITY,
                &a,
                ExpectedVersion::NoStream,
                &ea,
            ))
            .document(DocumentWrite::put(
                &collection,
                "fresh",
                ExpectedRevision::Absent,
                "{}",
            ))
            .append(AppendRequest::new(
                ENTITY,
                &b,
                ExpectedVersion::NoStream,
                &eb,
            ))
            .document(write);
        let ctx = format!("a unit with {what} of a document at revision 1");
        let err = commit_err(store, &ctx, &unit).await;
        assert_document_conflict(&ctx, &err, existing, write.expected, Some(1));
        for stream in [(ENTITY, a.as_str()), (ENTITY, b.as_str())] {
            assert!(
                read(store, stream).await.is_empty(),
                "{ctx}: no append of the unit may be stored"
            );
        }
        assert_eq!(
            read_document(store, &collection, "fresh").await,
            None,
            "{ctx}: no other document write of the unit may be applied"
        );
        let doc = read_document(store, existing.0, existing.1).await;
        check_document(&ctx, doc.as_ref(), existing, 1, initial, stored.recorded_at);
        let ids: Vec<EventId> = ea.iter().chain(&eb).map(|e| e.event_id.clone()).collect();
        check_absent_from_log(store, &ctx, from, &ids).await;
    }
}

/// Appends, new documents, updates and deletes commit together: the outcome reports each
/// document's revision after the unit (`None` for a delete), documents read back at those
/// revisions with the unit's commit time, and the events carry that time too. This is how a
/// repository writes a snapshot or an inline view in the events' transaction.
pub async fn appends_and_document_writes_commit_together<S: Storage>(store: &S) {
    let collection = unique_name("unit-docs");
    let id = unique_id("unit-docs");
    let stream = (ENTITY, id.as_str());
    let setup = UnitOfWork::new()
        .document(DocumentWrite::put(
            &collection,
            "update",
            ExpectedRevision::Absent,
            r#"{"v":1}"#,
        ))
        .document(DocumentWrite::put(
            &collection,
            "delete",
            ExpectedRevision::Absent,
            r#"{"v":1}"#,
        ));
    commit_ok(store, "writing two documents", &setup).await;

    let events = numbered(&id, 0, 3);
    let unit = UnitOfWork::new()
        .document(DocumentWrite::put(
            &collection,
            "new",
            ExpectedRevision::Absent,
            r#"{"total":3}"#,
        ))
        .append(AppendRequest::new(
            ENTITY,
            &id,
            ExpectedVersion::NoStream,
            &events,
        ))
        .document(DocumentWrite::put(
            &collection,
            "update",
            ExpectedRevision::Exact(1),
            r#"{"v":2}"#,
        ))
        .document(DocumentWrite::delete(
            &collection,
            "delete",
            ExpectedRevision::Exact(1),
        ));
    let outcome = commit_ok(store, "appends with document writes", &unit).await;
    assert_eq!(
        outcome.documents,
        [Some(1), Some(2), None],
        "the outcome must report each document's revision after the unit, in the unit's order"
    );
    let stored = read(store, stream).await;
    check_events("appends with document writes", &stored, &events, stream, 1);
    check_places(
        "appends with document writes",
        &stored,
        &outcome.appends[0].events,
    );
    for (key, revision, body) in [("new", 1, r#"{"total":3}"#), ("update", 2, r#"{"v":2}"#)] {
        let doc = read_document(store, &collection, key).await;
        check_document(
            "appends with document writes",
            doc.as_ref(),
            (&collection, key),
            revision,
            body,
            outcome.recorded_at,
        );
    }
    assert_eq!(
        read_document(store, &collection, "delete").await,
        None,
        "a document deleted by the unit must be gone"
    );

    let more = numbered(&id, 3, 1);
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &id,
            ExpectedVersion::Exact(3),
            &more,
        ))
        .document(DocumentWrite::put(
            &collection,
            "new",
            ExpectedRevision::Exact(1),
            r#"{"total":4}"#,
        ));
    let second = commit_ok(store, "a second unit", &unit).await;
    assert_eq!(second.documents, [Some(2)]);
    let doc = read_document(store, &collection, "new").await;
    check_document(
        "a second unit",
        doc.as_ref(),
        (&collection, "new"),
        2,
        r#"{"total":4}"#,
        second.recorded_at,
    );
}

/// A unit of document writes alone (a projection's checkpoint and its rows) commits: no append
/// outcomes, one revision per write, and the store's commit time on every document.
pub async fn a_unit_of_document_writes_only_commits<S: Storage>(store: &S) {
    let rows = unique_name("unit-rows");
    let checkpoints = unique_name("unit-checkpoints");
    let unit = UnitOfWork::new()
        .document(DocumentWrite::put(
            &rows,
            "a",
            ExpectedRevision::Absent,
            r#"{"n":1}"#,
        ))
        .document(DocumentWrite::put(
            &rows,
            "b",
            ExpectedRevision::Any,
            r#"{"n":2}"#,
        ))
        .document(DocumentWrite::put(
            &checkpoints,
            "p",
            ExpectedRevision::Absent,
            r#""cursor""#,
        ));
    let before = Timestamp::now();
    let outcome = commit_ok(store, "a unit of document writes", &unit).await;
    let after = Timestamp::now();
    assert!(
        outcome.appends.is_empty(),
        "a unit without appends reports no append outcome"
    );
    assert_eq!(outcome.documents, [Some(1), Some(1), Some(1)]);
    check_recent(
        "a unit of document writes",
        outcome.recorded_at,
        before,
        after,
    );
    for (collection, key, body) in [
        (&rows, "a", r#"{"n":1}"#),
        (&rows, "b", r#"{"n":2}"#),
        (&checkpoints, "p", r#""cursor""#),
    ] {
        let doc = read_document(store, collection, key).await;
        check_document(
            "a unit of document writes",
            doc.as_ref(),
            (collection, key),
            1,
            body,
            outcome.recorded_at,
        );
    }
}

/// An append of no events inside a unit guards its stream: the unit commits while the stream is
/// at the expected version (reporting that version and no places), and fails as a whole, with a
/// conflict naming that stream, once another writer moved it. A batch checks an entity it read
/// but did not change this way.
pub async fn an_empty_append_in_a_unit_guards_its_stream<S: Storage>(store: &S) {
    let collection = unique_name("unit-guard");
    let [guarded, target] = ["unit-guarded", "unit-target"].map(unique_id);
    append_ok(
        store,
        (ENTITY, &guarded),
        ExpectedVersion::NoStream,
        &numbered(&guarded, 0, 2),
    )
    .await;
    let first = numbered(&target, 0, 1);
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &guarded,
            ExpectedVersion::Exact(2),
            &[],
        ))
        .append(AppendRequest::new(
            ENTITY,
            &target,
            ExpectedVersion::NoStream,
            &first,
        ));
    let outcome = commit_ok(store, "a unit guarding a stream at version 2", &unit).await;
    assert_eq!(
        outcome.appends[0],
        AppendOutcome::new(2, Vec::new()),
        "the guard reports the stream's version and stores nothing"
    );
    check_stream(store, "after the guarded unit", (ENTITY, &target), &first).await;

    append_ok(
        store,
        (ENTITY, &guarded),
        ExpectedVersion::Exact(2),
        &numbered(&guarded, 2, 1),
    )
    .await;
    let second = numbered(&target, 1, 1);
    // The guard last: a store that wrote the appends one by one would have stored the other.
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &target,
            ExpectedVersion::Exact(1),
            &second,
        ))
        .document(DocumentWrite::put(
            &collection,
            "k",
            ExpectedRevision::Any,
            "{}",
        ))
        .append(AppendRequest::new(
            ENTITY,
            &guarded,
            ExpectedVersion::Exact(2),
            &[],
        ));
    let ctx = "a unit guarding a stream that moved to version 3";
    let err = commit_err(store, ctx, &unit).await;
    assert_conflict(ctx, &err, (ENTITY, &guarded), ExpectedVersion::Exact(2), 3);
    check_stream(store, ctx, (ENTITY, &target), &first).await;
    assert_eq!(
        read_document(store, &collection, "k").await,
        None,
        "{ctx}: the document must not be written"
    );
}

/// The very same unit committed again (its outcome was lost) returns the stored outcome (commit
/// time included) and applies nothing again: not its events, and not its document writes, even
/// one expecting any revision, and even after another writer changed the document since. A
/// retry that re-applied a unit's documents would undo other writers' work.
pub async fn a_retried_unit_returns_the_stored_outcome_without_rewriting_documents<S: Storage>(
    store: &S,
) {
    let from = head(store).await;
    let collection = unique_name("unit-retry");
    let [a, b] = ["unit-retry-a", "unit-retry-b"].map(unique_id);
    let (ea, eb) = (numbered(&a, 0, 2), numbered(&b, 0, 1));
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &a,
            ExpectedVersion::NoStream,
            &ea,
        ))
        .document(DocumentWrite::put(
            &collection,
            "any",
            ExpectedRevision::Any,
            r#"{"by":"unit"}"#,
        ))
        .append(AppendRequest::new(
            ENTITY,
            &b,
            ExpectedVersion::NoStream,
            &eb,
        ))
        .document(DocumentWrite::put(
            &collection,
            "absent",
            ExpectedRevision::Absent,
            r#"{"by":"unit"}"#,
        ));
    let first = commit_ok(store, "the unit", &unit).await;
    let again = commit_ok(store, "the retried unit", &unit).await;
    assert_eq!(
        again, first,
        "a retried unit must return the stored outcome, commit time included"
    );
    for key in ["any", "absent"] {
        let doc = read_document(store, &collection, key).await;
        check_document(
            "after the retried unit",
            doc.as_ref(),
            (&collection, key),
            1,
            r#"{"by":"unit"}"#,
            first.recorded_at,
        );
    }

    let other = UnitOfWork::new().document(DocumentWrite::put(
        &collection,
        "any",
        ExpectedRevision::Exact(1),
        r#"{"by":"other"}"#,
    ));
    let changed = commit_ok(store, "another writer's update", &other).await;
    let late = commit_ok(store, "the unit retried after another writer", &unit).await;
    assert_eq!(
        late.appends, first.appends,
        "a late retry must return the stored append outcomes"
    );
    let doc = read_document(store, &collection, "any").await;
    check_document(
        "after a late retry",
        doc.as_ref(),
        (&collection, "any"),
        2,
        r#"{"by":"other"}"#,
        changed.recorded_at,
    );

    check_stream(store, "after retried units", (ENTITY, &a), &ea).await;
    check_stream(store, "after retried units", (ENTITY, &b), &eb).await;
    let mut expected = pairs(&ea, &first.appends[0]);
    expected.extend(pairs(&eb, &first.appends[1]));
    check_log(store, "after retried units", from, LARGE, &expected).await;
}
