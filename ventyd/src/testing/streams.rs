//! Streams: round trips of every field, bodies, version ranges, borrowed reads, sizes, odd
//! characters and many streams.

use super::*;
use crate::metadata::Metadata;
use crate::storage::{EventRef, EventVisitor};

/// Reading a stream that was never written returns no events (not an error), also when another
/// stream has the same entity name or the same entity id, and for any range. A repository relies
/// on this to tell "no such entity" from a failure.
pub async fn reading_an_unknown_stream_returns_nothing<S: Storage>(store: &S) {
    let id = unique_id("unknown");
    for range in [ReadRange::ALL, ReadRange::up_to(3)] {
        assert!(
            read_range(store, (ENTITY, &id), range).await.is_empty(),
            "a stream that was never written must read as empty ({range:?})"
        );
    }
    append_ok(
        store,
        (ENTITY, &id),
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 2),
    )
    .await;
    let other_id = unique_id("unknown");
    assert!(
        read(store, (ENTITY, &other_id)).await.is_empty(),
        "another id under the same entity name must read as empty"
    );
    assert!(
        read(store, (OTHER, &id)).await.is_empty(),
        "the same id under another entity name must read as empty"
    );
}

/// One append of several events is read back, by stream and from the log, with every field as
/// it was sent: event id, name, entity name and id, version, schema version, creation time to
/// the millisecond (also before 1970 and at the edges of what RFC 3339 can write), metadata with
/// every named field and free-form extras (nested, null, numbers, unicode keys), or none, and the
/// body text; and at the position and commit time the append reported. An audit trail or an
/// upcaster that gets a field back changed is wrong in ways nobody notices until it matters.
pub async fn append_then_read_round_trips_every_field<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("round-trip");
    let stream = (ENTITY, id.as_str());

    let full = Metadata::new()
        .correlation_id("corr-42")
        .causation_id("cause-41")
        .actor("admin@example.com")
        .reason("support ticket #7: \"name\" fix ✓")
        .with("ip", "127.0.0.1")
        .with("attempt", 3)
        .with("ratio", 0.5)
        .with("flag", false)
        .with("nothing", serde_json::Value::Null)
        .with(
            "nested",
            json!({ "a": [1, "two", null, true], "b": { "c": -7 } }),
        )
        .with("ключ ✓", "значение");
    let extras_only = Metadata::new()
        .with("tenant", "acme")
        .with("ids", json!([1, 2, 3]));

    let mut e1 = event_with("conformance:created", r#"{"name":"Zoë ☃ 🦀","n":1}"#);
    e1.metadata = Some(Arc::new(full));
    let mut e2 = event_with("conformance:updated", "{}");
    e2.schema_version = 2;
    e2.event_created_at = Timestamp::from_millis(-1);
    e2.checked_schema = None;
    let mut e3 = event_with(
        "conformance:tagged",
        r#"{"tags":["a","b"],"deep":{"x":[{}]}}"#,
    );
    e3.schema_version = u32::MAX;
    e3.event_created_at = Timestamp::MAX;
    e3.metadata = Some(Arc::new(extras_only));
    e3.checked_schema = Some(0);
    let mut e4 = event_with("conformance:removed", r#"{"reason":null}"#);
    e4.schema_version = 7;
    e4.event_created_at = Timestamp::MIN;
    e4.metadata = Some(Arc::new(Metadata::new().actor("system")));
    e4.checked_schema = Some(u64::MAX);
    let events = vec![e1, e2, e3, e4];

    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    assert_eq!(
        outcome.version, 4,
        "after appending 4 events to a new stream it is at version 4"
    );

    let stored = read(store, stream).await;
    check_events("read_stream after one append", &stored, &events, stream, 1);
    check_places("read_stream after one append", &stored, &outcome.events);

    let ids: HashSet<EventId> = ids_of(&events).into_iter().collect();
    let logged: Vec<Arc<StoredEvent>> =
        scan_log(store, "read_log", LogRequest::new(from, LARGE), &ids)
            .await
            .into_iter()
            .map(|l| l.event)
            .collect();
    check_events("read_log after one append", &logged, &events, stream, 1);
    check_places("read_log after one append", &logged, &outcome.events);
}

/// Bodies come back as the JSON they were given, through whitespace, key order, escapes,
/// number spellings (`1.50`, `-0.0`, integers beyond `u64`), quotes, backslashes, control
/// characters, SQL and `LIKE` metacharacters, emoji and combining characters. Stores that keep
/// text (memory, SQLite) return the very bytes; a store with a JSON column may normalise the text
/// but not the value, and must still recognise an idempotent retry of the same body.
pub async fn bodies_round_trip_as_the_same_json<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("exact-body");
    let stream = (ENTITY, id.as_str());
    let events: Vec<NewEvent> = BODIES
        .iter()
        .map(|b| event_with("conformance:exact", *b))
        .collect();
    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    check_stream(store, "read_stream of exact bodies", stream, &events).await;
    let ids: HashSet<EventId> = ids_of(&events).into_iter().collect();
    let logged: Vec<Arc<StoredEvent>> =
        scan_log(store, "read_log", LogRequest::new(from, LARGE), &ids)
            .await
            .into_iter()
            .map(|l| l.event)
            .collect();
    check_events("read_log of exact bodies", &logged, &events, stream, 1);
    let again = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    assert_eq!(
        again, outcome,
        "a retry of the same bodies must be recognised as a retry, whatever form the store keeps them in"
    );
}

/// JSON bodies that stress a store's handling of text, shared with the document cases.
pub(super) const BODIES: [&str; 8] = [
    r#"{"b":1,  "a" : "x" ,"c":[ 1 , 2 ]}"#,
    "{\n  \"pretty\": true,\n\t\"tab\": \"indent\"\n}",
    r#"{"escaped":"\u00e9 \ud83e\udd80","raw":"é 🦀"}"#,
    r#"{"n":1.50,"neg":-0.0,"big":123456789012345678901234567890,"exp":1E+2}"#,
    r#"{"quote":"she said \"hi\"","backslash":"C:\\path\\to\\","ctl":"\t\n\r\u0001\u001f"}"#,
    r#"{"sql":"'; DROP TABLE events; --","like":"100% _sure_ [a-z]*","html":"<a href='x'>&amp;</a>"}"#,
    r#"{"family":"👩‍👩‍👧‍👦","flag":"🇳🇴","rtl":"مرحبا","cjk":"漢字","combining":"é","zwj":"a‍b"}"#,
    r#"{"empty":"","nested":{"a":{"b":{"c":{"d":[[[[]]]]}}}}}"#,
];

/// `read_stream` returns exactly the events whose version lies in the range
/// ([`ReadRange::contains`]): from a version, up to a version, both, a single version, ranges
/// reaching past the end, empty and inverted ranges, and the edges 0 and `u64::MAX`. Time
/// travel (`find_one_at`) and snapshot catch-up read partial streams.
pub async fn read_stream_honours_version_ranges<S: Storage>(store: &S) {
    let id = unique_id("ranges");
    let stream = (ENTITY, id.as_str());
    let events = numbered(&id, 0, 6);
    append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    let r = |from_version, to_version| ReadRange {
        from_version,
        to_version,
    };
    let ranges = [
        ReadRange::ALL,
        ReadRange::up_to(3),
        ReadRange::up_to(6),
        ReadRange::up_to(100),
        r(2, None),
        r(2, Some(4)),
        r(4, Some(4)),
        r(6, None),
        r(6, Some(6)),
        r(7, None),
        r(7, Some(10)),
        r(5, Some(2)),
        r(0, None),
        r(0, Some(0)),
        r(1, Some(0)),
        r(3, Some(100)),
        r(1, Some(u64::MAX)),
        r(u64::MAX, None),
        r(u64::MAX, Some(u64::MAX)),
    ];
    for range in ranges {
        let stored = read_range(store, stream, range).await;
        let want: Vec<u64> = (1..=6).filter(|v| range.contains(*v)).collect();
        let got: Vec<u64> = stored.iter().map(|e| e.version).collect();
        assert_eq!(
            got, want,
            "read_stream with {range:?} must return these versions"
        );
        for e in &stored {
            check_event(
                &format!("read_stream with {range:?}"),
                e,
                &events[(e.version - 1) as usize],
                stream,
                e.version,
            );
        }
    }
}

/// Collects what a visitor is handed, as owned events.
struct Collect(Vec<StoredEvent>);

impl EventVisitor for Collect {
    fn visit(&mut self, event: EventRef<'_>) -> Result<(), Error> {
        self.0.push(event.to_stored());
        Ok(())
    }
}

/// `visit_stream`, the borrowed read a repository loads entities with, hands over exactly the
/// events `read_stream` returns for the same range, field for field (commit time included) and
/// in version order, and gives the visitor back.
pub async fn visiting_a_stream_sees_what_reading_it_returns<S: Storage>(store: &S) {
    let id = unique_id("visit");
    let stream = (ENTITY, id.as_str());
    let mut events = numbered(&id, 0, 3);
    events[2].metadata = Some(Arc::new(Metadata::new().actor("visitor").with("n", 2)));
    append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    let mut more = numbered(&id, 3, 2);
    more[0].checked_schema = None;
    append_ok(store, stream, ExpectedVersion::Exact(3), &more).await;
    for range in [
        ReadRange::ALL,
        ReadRange::up_to(3),
        ReadRange {
            from_version: 2,
            to_version: Some(4),
        },
    ] {
        let read = read_range(store, stream, range).await;
        let visited = store
            .visit_stream(ENTITY, &id, range, Collect(Vec::new()))
            .await
            .unwrap_or_else(|e| panic!("visit_stream with {range:?} failed: {e}"))
            .0;
        let read: Vec<StoredEvent> = read.iter().map(|e| (**e).clone()).collect();
        assert_eq!(
            visited, read,
            "visit_stream with {range:?} must match read_stream"
        );
    }
    let none = store
        .visit_stream(
            ENTITY,
            &unique_id("visit-none"),
            ReadRange::ALL,
            Collect(Vec::new()),
        )
        .await
        .expect("visiting an unknown stream");
    assert!(none.0.is_empty(), "an unknown stream visits nothing");
}

/// Stops after `after` events with an error.
struct FailAfter {
    seen: usize,
    after: usize,
}

impl EventVisitor for FailAfter {
    fn visit(&mut self, _: EventRef<'_>) -> Result<(), Error> {
        self.seen += 1;
        if self.seen > self.after {
            return Err(crate::error::StorageError::msg("the visitor refused event 3").into());
        }
        Ok(())
    }
}

/// An error from the visitor (a body that does not decode, when a repository loads) stops the
/// read and comes back from `visit_stream` as it was, not wrapped in a storage error.
pub async fn a_visitor_error_stops_the_read<S: Storage>(store: &S) {
    let id = unique_id("visit-error");
    let stream = (ENTITY, id.as_str());
    append_ok(
        store,
        stream,
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 5),
    )
    .await;
    let err = store
        .visit_stream(ENTITY, &id, ReadRange::ALL, FailAfter { seen: 0, after: 2 })
        .await
        .err()
        .expect("the visitor's error must stop the read");
    assert!(
        err.to_string().contains("the visitor refused event 3"),
        "the visitor's own error must come back: {err}"
    );
}

/// A 1 MiB body (with multi-byte characters) round-trips exactly through `read_stream` and
/// `read_log`, next to a small event in the same batch. Documents and imports make large events,
/// and a store must not truncate them.
pub async fn a_large_body_round_trips<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("large");
    let stream = (ENTITY, id.as_str());
    let chunk = "0123456789abcdef ✓ ünïcödé 🦀 \\\"quoted\\\" ";
    let mut data = String::with_capacity(1 << 20);
    while data.len() < 1 << 20 {
        data.push_str(chunk);
    }
    let big = event_with("conformance:large", format!(r#"{{"data":"{data}"}}"#));
    assert!(big.body.len() > 1 << 20);
    let events = vec![big, numbered(&id, 1, 1).remove(0)];
    append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    check_stream(store, "a 1 MiB body", stream, &events).await;
    let ids: HashSet<EventId> = ids_of(&events).into_iter().collect();
    let logged: Vec<Arc<StoredEvent>> =
        scan_log(store, "a 1 MiB body", LogRequest::new(from, 1), &ids)
            .await
            .into_iter()
            .map(|l| l.event)
            .collect();
    check_events("read_log of a 1 MiB body", &logged, &events, stream, 1);
}

/// One append of as many events as an entity may queue ([`DEFAULT_QUEUE_LIMIT`], 10,000) is
/// stored whole, at versions 1..=10,000, and reads back from the stream and the log. A
/// repository commits a full queue in one append, so an adapter must not hit a statement or
/// parameter limit below it.
///
/// [`DEFAULT_QUEUE_LIMIT`]: crate::DEFAULT_QUEUE_LIMIT
pub async fn a_batch_as_large_as_the_queue_limit_round_trips<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("full-queue");
    let stream = (ENTITY, id.as_str());
    let mut events = numbered(&id, 0, crate::DEFAULT_QUEUE_LIMIT);
    for (i, e) in events.iter_mut().enumerate() {
        e.schema_version = (i % 3) as u32 + 1;
        e.event_created_at = Timestamp::from_millis(1_700_000_000_000 + i as i64);
    }
    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    assert_eq!(outcome.version, crate::DEFAULT_QUEUE_LIMIT as u64);
    check_stream(store, "a full queue in one append", stream, &events).await;
    check_log(
        store,
        "a full queue in one append",
        from,
        LARGE,
        &pairs(&events, &outcome),
    )
    .await;
}

/// Entity names, entity ids, event names and bodies with emoji, quotes, `%`, `_`, `'`, `\`,
/// spaces, control characters (no NUL) and a very long id round-trip, and a stream is found
/// only by its exact name and id: a pattern such as `%` or `_` must not match (SQL `LIKE`),
/// nor must quoting break. Ids come from users and other systems; a store cannot choose them.
pub async fn odd_characters_round_trip<S: Storage>(store: &S) {
    let u = UuidV7.event_id();
    let names = [
        "conformance odd ✓",
        "o'brien",
        "100%_done",
        "back\\slash",
        "quote\"d",
        "tab\tnew\nline\r\u{1}\u{1b}\u{7f}",
        "emoji🦀👩‍💻",
        "ünïcödé-名前",
        " spaced ",
        "semi;colon--",
    ];
    let ids = [
        format!("id ✓ {u}"),
        format!("it's {u}"),
        format!("50%_off_{u}"),
        format!("C:\\dir\\{u}\\"),
        format!("say \"{u}\""),
        format!("ctl\t\n\r\u{1}\u{1f}{u}"),
        format!("🦀🇳🇴{u}👩‍👩‍👧"),
        format!("名前-{u}"),
        format!(" {u} "),
        format!("{u}{}", "long-".repeat(200)),
    ];
    let mut written = Vec::new();
    for (name, id) in names.iter().zip(&ids) {
        let stream = (*name, id.as_str());
        let mut events = vec![
            event_with(
                "odd:événement ✓ 'q' \"dq\" %_",
                json!({ "name": name, "id": id, "text": "'%_\\\"🦀\u{1}" }).to_string(),
            ),
            event_with("odd:second", json!({ "n": 2 }).to_string()),
        ];
        events[0].metadata = Some(Arc::new(
            Metadata::new()
                .actor(*name)
                .reason(id.as_str())
                .with(id.as_str(), *name),
        ));
        append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
        written.push((stream, events));
    }
    for (stream, events) in &written {
        check_stream(store, "odd characters", *stream, events).await;
    }
    for (name, pattern) in [
        ("100%_done", "%"),
        ("100%_done", "_"),
        ("%", "%"),
        ("o'brien", "it_s %"),
        ("o'brien", "it's %"),
        ("100%_done", &format!("50__off_{u}")),
        ("100_%done", &format!("50%_off_{u}")),
        ("back\\\\slash", &format!("C:\\\\dir\\\\{u}\\\\")),
    ] {
        assert!(
            read(store, (name, pattern)).await.is_empty(),
            "reading {name:?} {pattern:?} must match no stream: ids and names are compared exactly, not as patterns"
        );
    }
}

/// Streams whose names or ids differ only by letter case, a leading or trailing space or tab,
/// or Unicode normalisation are different streams; so are streams whose name and id would
/// concatenate to the same text (`a:b`/`c` and `a`/`b:c`). A store that folds case, trims,
/// normalises or joins keys would merge two entities' histories.
pub async fn streams_differing_only_slightly_stay_distinct<S: Storage>(store: &S) {
    let u = UuidV7.uuid().simple().to_string();
    let base = format!("Stream-{u}");
    let name = format!("conformance-{u}");
    let streams: Vec<(String, String)> = vec![
        (ENTITY.to_owned(), base.clone()),
        (ENTITY.to_owned(), base.to_lowercase()),
        (ENTITY.to_owned(), base.to_uppercase()),
        (ENTITY.to_owned(), format!("{base} ")),
        (ENTITY.to_owned(), format!(" {base}")),
        (ENTITY.to_owned(), format!("{base}\t")),
        (ENTITY.to_owned(), format!("{base}-é")),
        (ENTITY.to_owned(), format!("{base}-e\u{301}")),
        (name.clone(), base.clone()),
        (name.to_uppercase(), base.clone()),
        (format!("{name} "), base.clone()),
        (format!("{name}:x"), "y".to_owned()),
        (name.clone(), "x:y".to_owned()),
        (format!("{name}x"), "y".to_owned()),
        (name.clone(), "xy".to_owned()),
        (format!("{name}/x"), "y".to_owned()),
        (name.clone(), "x/y".to_owned()),
    ];
    let mut written = Vec::new();
    for (name, id) in &streams {
        let events = vec![event_with(
            "conformance:distinct",
            json!({ "name": name, "id": id }).to_string(),
        )];
        if let Err(e) = store
            .append(AppendRequest::new(
                name,
                id,
                ExpectedVersion::NoStream,
                &events,
            ))
            .await
        {
            panic!(
                "creating {name:?} {id:?} failed, as if it were one of the streams created before it ({:?}): {e}",
                written.iter().map(|(s, _)| s).collect::<Vec<_>>()
            );
        }
        written.push(((name.as_str(), id.as_str()), events));
    }
    for (stream, events) in &written {
        check_stream(store, "nearly identical streams", *stream, events).await;
    }
    // Near misses of the streams above that were never written: a store that falls back to a
    // folded or trimmed key when the exact one is missing would find one of the streams.
    let mixed: String = base
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    for (name, id) in [
        (ENTITY.to_owned(), mixed),
        (ENTITY.to_owned(), format!("{base}  ")),
        (ENTITY.to_owned(), format!("\t{base}")),
        (ENTITY.to_owned(), base.trim_start_matches('S').to_owned()),
        (ENTITY.to_uppercase(), base.clone()),
        (format!(" {ENTITY}"), base.clone()),
        (format!("{name}:x:y"), String::new()),
        (format!("{name}:x"), "y ".to_owned()),
    ] {
        assert!(
            read(store, (&name, &id)).await.is_empty(),
            "{name:?} {id:?} was never written and must read as empty, not as a stream whose key differs only slightly"
        );
    }
}

/// Twenty streams written round-robin, one to three events at a time, each keep exactly their
/// own events in version order, and in the log each stream's events appear in version order.
/// Interleaving is the normal state of a busy store.
pub async fn many_interleaved_streams_keep_their_own_events<S: Storage>(store: &S) {
    const STREAMS: usize = 20;
    const ROUNDS: usize = 5;
    let from = head(store).await;
    let ids: Vec<String> = (0..STREAMS).map(|_| unique_id("interleaved")).collect();
    let mut sent: Vec<Vec<NewEvent>> = vec![Vec::new(); STREAMS];
    let mut expected = Vec::new();
    for round in 0..ROUNDS {
        for (s, id) in ids.iter().enumerate() {
            let n = (round + s) % 3 + 1;
            let batch = numbered(id, sent[s].len(), n);
            let outcome = append_ok(
                store,
                (ENTITY, id),
                ExpectedVersion::after(sent[s].len() as u64),
                &batch,
            )
            .await;
            expected.extend(pairs(&batch, &outcome));
            sent[s].extend(batch);
        }
    }
    for (id, events) in ids.iter().zip(&sent) {
        check_stream(store, "interleaved streams", (ENTITY, id), events).await;
    }
    check_log(store, "interleaved streams", from, 7, &expected).await;
}
