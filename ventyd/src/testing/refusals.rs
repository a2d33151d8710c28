//! Malformed units of work, which every store refuses before writing anything: a stream or a
//! document written twice, an empty unit, an event id used twice, NUL characters, empty names.

use super::*;
use crate::storage::DocumentWrite;

/// Checks that a unit was refused as an invalid request and left no trace: no stream of
/// `streams` was written, no document of `documents`, and no event of `ids` is in the log.
async fn assert_refused<S: Storage>(
    store: &S,
    ctx: &str,
    unit: &UnitOfWork<'_>,
    from: LogCursor,
    streams: &[(&str, &str)],
    documents: &[(&str, &str)],
) {
    let err = commit_err(store, ctx, unit).await;
    assert_invalid(ctx, &err);
    for &stream in streams {
        assert!(
            read(store, stream).await.is_empty(),
            "{ctx}: a refused unit must store no event of {} {:?}",
            stream.0,
            stream.1
        );
    }
    for &(collection, key) in documents {
        assert_eq!(
            read_document(store, collection, key).await,
            None,
            "{ctx}: a refused unit must write no document ({key:?} of {collection:?})"
        );
    }
    let ids: Vec<EventId> = unit
        .appends()
        .iter()
        .flat_map(|a| a.events.iter().map(|e| e.event_id.clone()))
        .collect();
    check_absent_from_log(store, ctx, from, &ids).await;
}

/// A unit appending to one stream twice is refused (`InvalidRequest`) and stores nothing of any
/// of its writes: the two appends' expected versions could not both hold, and all of a stream's
/// events belong in one append.
pub async fn a_unit_naming_a_stream_twice_is_refused<S: Storage>(store: &S) {
    let from = head(store).await;
    let collection = unique_name("unit-twice");
    let [s, t] = ["unit-twice-s", "unit-twice-t"].map(unique_id);
    let (e1, e2, e3) = (numbered(&s, 0, 1), numbered(&t, 0, 1), numbered(&s, 1, 1));
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &s,
            ExpectedVersion::NoStream,
            &e1,
        ))
        .append(AppendRequest::new(
            ENTITY,
            &t,
            ExpectedVersion::NoStream,
            &e2,
        ))
        .append(AppendRequest::new(
            ENTITY,
            &s,
            ExpectedVersion::Exact(1),
            &e3,
        ))
        .document(DocumentWrite::put(
            &collection,
            "k",
            ExpectedRevision::Any,
            "{}",
        ));
    let streams = [(ENTITY, s.as_str()), (ENTITY, t.as_str())];
    assert_refused(
        store,
        "a unit naming a stream twice",
        &unit,
        from,
        &streams,
        &[(&collection, "k")],
    )
    .await;
}

/// A unit writing one document twice (two puts, or a put and a delete) is refused
/// (`InvalidRequest`) and stores nothing: which write would win is not defined.
pub async fn a_unit_writing_a_document_twice_is_refused<S: Storage>(store: &S) {
    let from = head(store).await;
    let collection = unique_name("unit-doc-twice");
    let s = unique_id("unit-doc-twice");
    let events = numbered(&s, 0, 1);
    for (what, second) in [
        (
            "two puts",
            DocumentWrite::put(&collection, "k", ExpectedRevision::Any, r#"{"n":2}"#),
        ),
        (
            "a put and a delete",
            DocumentWrite::delete(&collection, "k", ExpectedRevision::Any),
        ),
    ] {
        let unit = UnitOfWork::new()
            .append(AppendRequest::new(
                ENTITY,
                &s,
                ExpectedVersion::NoStream,
                &events,
            ))
            .document(DocumentWrite::put(
                &collection,
                "k",
                ExpectedRevision::Absent,
                r#"{"n":1}"#,
            ))
            .document(second);
        let ctx = format!("a unit writing a document twice ({what})");
        assert_refused(
            store,
            &ctx,
            &unit,
            from,
            &[(ENTITY, &s)],
            &[(&collection, "k")],
        )
        .await;
    }
}

/// An empty unit (no append, no document write) is refused (`InvalidRequest`): committing
/// nothing is a bug in the caller, not a success to report.
pub async fn an_empty_unit_is_refused<S: Storage>(store: &S) {
    let from = head(store).await;
    assert_refused(store, "an empty unit", &UnitOfWork::new(), from, &[], &[]).await;
}

/// An event id used twice in one unit, in appends to two streams, is refused (`InvalidRequest`)
/// and stores nothing: an event id names one event.
pub async fn an_event_id_used_twice_in_a_unit_is_refused<S: Storage>(store: &S) {
    let from = head(store).await;
    let [s, t] = ["unit-ids-s", "unit-ids-t"].map(unique_id);
    let es = numbered(&s, 0, 2);
    let mut et = numbered(&t, 0, 2);
    et[1].event_id = es[0].event_id.clone();
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &s,
            ExpectedVersion::NoStream,
            &es,
        ))
        .append(AppendRequest::new(
            ENTITY,
            &t,
            ExpectedVersion::NoStream,
            &et,
        ));
    let streams = [(ENTITY, s.as_str()), (ENTITY, t.as_str())];
    assert_refused(
        store,
        "a unit using an event id twice",
        &unit,
        from,
        &streams,
        &[],
    )
    .await;
}

/// A NUL character in an event body, an entity name or id, an event name, a collection, a
/// document key or a document body is refused (`InvalidRequest`) and nothing of the unit is
/// stored: no store can keep one faithfully (PostgreSQL's text and JSONB refuse it), so every
/// store refuses it alike.
pub async fn nul_characters_are_refused<S: Storage>(store: &S) {
    refuse_each(store, "nul", "a\0b", &ALL_PLACES).await;
}

/// A `\u0000` escape in an event body or a document body, and a NUL character in an event's
/// metadata, are refused (`InvalidRequest`) like a raw NUL, and nothing of the unit is stored:
/// PostgreSQL's JSONB refuses the escape, so no store takes it. An escaped backslash before
/// `u0000` (`\\u0000`, the six characters `\u0000` as text) is no NUL: it is stored and read
/// back as written.
pub async fn nul_escapes_in_bodies_and_metadata_are_refused<S: Storage>(store: &S) {
    refuse_each(
        store,
        "nul-escape",
        r"a\u0000b",
        &["event body", "event metadata", "document body"],
    )
    .await;

    let collection = unique_name("nul-escape");
    let id = unique_id("nul-escape-not");
    let text = r#"{"text":"a\\u0000b","more":"\\\\u0000"}"#;
    let events = [event_with("conformance:named", text)];
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &id,
            ExpectedVersion::NoStream,
            &events,
        ))
        .document(DocumentWrite::put(
            &collection,
            "escaped",
            ExpectedRevision::Absent,
            text,
        ));
    commit_ok(store, "an escaped backslash before u0000", &unit).await;
    let stored = read(store, (ENTITY, id.as_str())).await;
    assert_eq!(
        stored.len(),
        1,
        "an escaped backslash before u0000 is stored"
    );
    assert!(
        same_json(&stored[0].body, text),
        "an escaped backslash before u0000 reads back as written: {}",
        preview(&stored[0].body)
    );
    let doc = read_document(store, &collection, "escaped")
        .await
        .expect("the document with an escaped backslash is stored");
    assert!(same_json(&doc.body, text), "{}", preview(&doc.body));
}

/// An empty entity name, entity id, event name, collection or document key is refused
/// (`InvalidRequest`) and nothing of the unit is stored: an empty name is always a bug, and
/// stores disagree on whether it equals a missing one.
pub async fn empty_names_are_refused<S: Storage>(store: &S) {
    refuse_each(store, "empty", "", &NAME_PLACES).await;
}

/// The places of a unit of work where a name goes.
const NAME_PLACES: [&str; 5] = [
    "entity name",
    "entity id",
    "event name",
    "collection",
    "document key",
];

/// Every place of a unit of work where a name or a text goes.
const ALL_PLACES: [&str; 7] = [
    "entity name",
    "entity id",
    "event name",
    "event body",
    "collection",
    "document key",
    "document body",
];

/// Commits, for each of `places`, a unit with `bad` there next to valid writes, and checks that
/// each is refused and leaves no trace. A body place gets `{"text":"<bad>"}`; the place
/// `"event metadata"` gets metadata with a NUL character in a nested value, whatever `bad` is.
async fn refuse_each<S: Storage>(store: &S, case: &str, bad: &str, places: &[&str]) {
    let from = head(store).await;
    let collection = unique_name(case);
    for &place in places {
        let good = unique_id(case);
        let id = unique_id(case);
        let mut event = event_with("conformance:named", json!({ "place": place }).to_string());
        match place {
            "event name" => event.event_name = Cow::Owned(bad.to_owned()),
            "event body" => event.body = format!("{{\"text\":\"{bad}\"}}"),
            "event metadata" => {
                event.metadata = Some(Arc::new(
                    crate::metadata::Metadata::new()
                        .actor("ok")
                        .with("nested", json!({ "list": ["fine", "a\0b"] })),
                ));
            }
            _ => {}
        }
        let entity_name = if place == "entity name" { bad } else { ENTITY };
        let entity_id = if place == "entity id" {
            bad.to_owned()
        } else {
            id.clone()
        };
        let doc_collection = if place == "collection" {
            bad
        } else {
            collection.as_str()
        };
        let key = if place == "document key" { bad } else { "k" };
        let body = if place == "document body" {
            format!("{{\"text\":\"{bad}\"}}")
        } else {
            "{}".to_owned()
        };
        let good_events = numbered(&good, 0, 1);
        let events = [event];
        let unit = UnitOfWork::new()
            .append(AppendRequest::new(
                ENTITY,
                &good,
                ExpectedVersion::NoStream,
                &good_events,
            ))
            .append(AppendRequest::new(
                entity_name,
                &entity_id,
                ExpectedVersion::NoStream,
                &events,
            ))
            .document(DocumentWrite::put(
                doc_collection,
                key,
                ExpectedRevision::Any,
                &body,
            ))
            .document(DocumentWrite::put(
                &collection,
                "good",
                ExpectedRevision::Any,
                "{}",
            ));
        let ctx = format!("a unit with {bad:?} in its {place}");
        let streams = [(ENTITY, good.as_str()), (ENTITY, id.as_str())];
        assert_refused(
            store,
            &ctx,
            &unit,
            from,
            &streams,
            &[(&collection, "k"), (&collection, "good")],
        )
        .await;
    }
}
