//! Repository over the in-memory store: commit, load, concurrency, nothing lost, bad data.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use ventyd::ExpectedVersion;
use ventyd::prelude::*;
use ventyd::storage::{AppendRequest, LogCursor, LogRequest, NewEvent, ReadRange};
use ventyd::{DecodeReason, Error, IdGenerator, LoadValidation};

#[test]
fn commit_then_find_one_round_trips_state_version_and_events() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("Alice Cooper".into()).unwrap();
        let committed = repo.commit(&mut user).await.unwrap();
        assert_eq!(committed.events, 2);
        assert_eq!(committed.version, 2);
        assert_eq!(committed.last_position, Some(2));
        assert!(!user.has_uncommitted());
        assert_eq!(user.committed_version(), 2);
        assert_eq!(
            user.events().len(),
            2,
            "committed events stay in the history"
        );
        assert_eq!(user.events().last().unwrap().position(), Some(2));

        let loaded = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.state(), user.state());
        assert_eq!(loaded.version(), 2);
        assert_eq!(loaded.committed_version(), 2);
        let original: Vec<_> = user.events().cloned().collect();
        let reloaded: Vec<_> = loaded.events().cloned().collect();
        assert_eq!(original, reloaded);
    });
}

#[test]
fn find_one_is_none_for_an_unknown_id() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        assert!(repo.find_one("nobody").await.unwrap().is_none());
    });
}

#[test]
fn committing_nothing_is_a_no_op() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        let mut user = repo.create(alice()).unwrap();
        repo.commit(&mut user).await.unwrap();
        let again = repo.commit(&mut user).await.unwrap();
        assert_eq!(again.events, 0);
        assert_eq!(repo.storage().len(), 1);
    });
}

#[test]
fn a_stale_writer_gets_a_concurrency_error_with_both_versions() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        let mut user = repo.create(alice()).unwrap();
        repo.commit(&mut user).await.unwrap();

        let mut a = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        let mut b = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        a.update_name("A".into()).unwrap();
        b.update_name("B".into()).unwrap();
        repo.commit(&mut a).await.unwrap();
        let err = repo.commit(&mut b).await.unwrap_err();
        let Error::Concurrency {
            expected,
            actual,
            entity_name,
            ..
        } = &err
        else {
            panic!("expected a conflict, got {err:?}");
        };
        assert_eq!(*expected, ExpectedVersion::Exact(1));
        assert_eq!(*actual, 2);
        assert_eq!(entity_name, "user");
        assert!(err.to_string().contains("reload"), "{err}");
        // The loser keeps its queue: nothing is lost.
        assert_eq!(b.queued_events().len(), 1);
        assert_eq!(b.state().name.as_deref(), Some("B"));
        let stored = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        assert_eq!(stored.state().name.as_deref(), Some("A"));
    });
}

#[test]
fn creating_an_existing_id_again_is_a_conflict() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        let opts = ventyd::CreateOptions::default().entity_id("same");
        let mut first = repo.create_with(alice(), opts.clone()).unwrap();
        let mut second = repo.create_with(alice(), opts).unwrap();
        repo.commit(&mut first).await.unwrap();
        let err = repo.commit(&mut second).await.unwrap_err();
        assert!(matches!(
            err,
            Error::Concurrency {
                expected: ExpectedVersion::NoStream,
                actual: 1,
                ..
            }
        ));
    });
}

#[test]
fn the_update_helper_reloads_and_retries_on_conflict() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        let mut user = repo.create(alice()).unwrap();
        repo.commit(&mut user).await.unwrap();
        let id = user.entity_id().to_owned();

        let mut calls = 0;
        let tags = repo
            .update(&id, 3, |u| {
                calls += 1;
                if calls == 1 {
                    // Another writer slips in between this load and this commit.
                    let mut other = futures_block(repo.find_one(&id)).unwrap().unwrap();
                    other.tag_all(vec!["x".into()]).unwrap();
                    futures_block(repo.commit(&mut other)).unwrap();
                }
                u.tag_all(vec!["y".into()])?;
                Ok::<_, Error>(u.state().tags.len())
            })
            .await
            .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(tags, Some(2));
        let loaded = repo.find_one(&id).await.unwrap().unwrap();
        assert_eq!(loaded.state().tags, ["x", "y"]);

        assert_eq!(
            repo.update("missing", 3, |_| Ok::<_, Error>(()))
                .await
                .unwrap(),
            None
        );
    });
}

/// Runs a future that the memory store completes without waiting.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the memory store never waits"),
    }
}

#[test]
fn a_failed_commit_keeps_the_queue_and_can_be_retried() {
    rt().block_on(async {
        let store = Arc::new(FlakyStorage::default());
        let repo = Repository::<User, _>::new(store.clone());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("A".into()).unwrap();

        store.fail_before.store(1, Ordering::SeqCst);
        let err = repo.commit(&mut user).await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
        assert_eq!(user.queued_events().len(), 2, "nothing lost");
        assert_eq!(store.inner.len(), 0, "nothing half-written");

        repo.commit(&mut user).await.unwrap();
        assert_eq!(store.inner.len(), 2);
    });
}

#[test]
fn retrying_a_commit_whose_outcome_was_lost_does_not_duplicate() {
    rt().block_on(async {
        let store = Arc::new(FlakyStorage::default());
        let repo = Repository::<User, _>::new(store.clone());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("A".into()).unwrap();

        // The store writes, then the answer is lost.
        store.fail_after.store(1, Ordering::SeqCst);
        assert!(repo.commit(&mut user).await.is_err());
        assert_eq!(user.queued_events().len(), 2);
        assert_eq!(store.inner.len(), 2);

        // The retry sends the same event ids: the store recognises them.
        let committed = repo.commit(&mut user).await.unwrap();
        assert_eq!(committed.version, 2);
        assert_eq!(committed.last_position, Some(2));
        assert_eq!(store.inner.len(), 2, "no duplicates");
        assert!(!user.has_uncommitted());
    });
}

#[test]
fn time_travel_loads_an_earlier_version() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("First".into()).unwrap();
        user.update_name("Second".into()).unwrap();
        repo.commit(&mut user).await.unwrap();

        let v2 = repo
            .find_one_at(user.entity_id(), 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v2.version(), 2);
        assert_eq!(v2.state().name.as_deref(), Some("First"));
        // The past comes with its events, and as a read-only entity (see the UI test
        // `repository/commit-the-past`: it cannot be mutated or committed).
        let v2: ventyd::ReadonlyEntity<User> = v2;
        let events: Vec<_> = v2.events().map(|e| (e.version(), e.event_name())).collect();
        assert_eq!(events, [(1, "user:created"), (2, "user:name_updated")]);
        assert_eq!(v2.events().last().unwrap().position(), Some(2));
        let v1 = repo
            .find_one_at(user.entity_id(), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v1.state().name, None);
        assert!(
            repo.find_one_at(user.entity_id(), 0)
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn metadata_is_stored_on_every_committed_event() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("A".into()).unwrap();
        let meta = Metadata::new()
            .actor("admin")
            .reason("ticket 7")
            .correlation_id("c-1")
            .with("ip", "127.0.0.1");
        repo.commit_with(&mut user, meta.clone()).await.unwrap();
        let loaded = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        for e in loaded.events() {
            assert_eq!(e.metadata(), &meta);
        }
        let json = serde_json::to_value(loaded.events().next().unwrap()).unwrap();
        assert_eq!(json["metadata"]["actor"], "admin");
        assert_eq!(json["metadata"]["ip"], "127.0.0.1");
    });
}

/// Writes raw events straight into the store, as a buggy writer or a manual edit would.
async fn write_raw(store: &MemoryStorage, id: &str, events: &[(&str, &str)]) {
    let events: Vec<NewEvent> = events
        .iter()
        .map(|(name, body)| NewEvent::new(ventyd::UuidV7.event_id(), name.to_string(), *body))
        .collect();
    store
        .append(AppendRequest::new(
            "user",
            id,
            ExpectedVersion::Any,
            &events,
        ))
        .await
        .unwrap();
}

fn decode_reason(err: &Error) -> &DecodeReason {
    match err {
        Error::Decode(d) => &d.reason,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

/// Loads user "u1" from a store holding a valid creation followed by `second`, written raw.
async fn load_after_creation(
    second: (&str, &str),
    validation: LoadValidation,
) -> Result<Option<Entity<User>>, Error> {
    let store = MemoryStorage::new();
    let created = ("user:created", r#"{"email":"a@example.com","name":null}"#);
    write_raw(&store, "u1", &[created, second]).await;
    Repository::<User, _>::new(store)
        .load_validation(validation)
        .find_one("u1")
        .await
}

#[test]
fn malformed_stored_json_is_a_decode_error_naming_entity_version_and_event() {
    rt().block_on(async {
        let second = ("user:name_updated", r#"{"name": "#);
        let err = load_after_creation(second, LoadValidation::default())
            .await
            .unwrap_err();
        assert!(matches!(decode_reason(&err), DecodeReason::Body(_)));
        let msg = err.to_string();
        for part in ["user:name_updated", "version 2", "user", "\"u1\""] {
            assert!(msg.contains(part), "{msg:?} lacks {part:?}");
        }
    });
}

#[test]
fn a_stored_body_of_the_wrong_shape_is_a_decode_error() {
    rt().block_on(async {
        let second = ("user:name_updated", r#"{"name": 5}"#);
        let err = load_after_creation(second, LoadValidation::Never)
            .await
            .unwrap_err();
        assert!(matches!(decode_reason(&err), DecodeReason::Body(_)));
        assert!(err.to_string().contains("version 2"), "{err}");
    });
}

#[test]
fn a_stored_body_failing_its_schema_is_an_error_on_load() {
    rt().block_on(async {
        let second = ("user:name_updated", r#"{"name": ""}"#);
        let err = load_after_creation(second, LoadValidation::default())
            .await
            .unwrap_err();
        let DecodeReason::Schema(violations) = decode_reason(&err) else {
            panic!("expected a schema failure: {err}");
        };
        assert_eq!(violations[0].pointer, "/name");
        // Trusting the store skips the schema; the body still decodes into the Rust type.
        let user = load_after_creation(second, LoadValidation::Never)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.state().name.as_deref(), Some(""));
    });
}

#[test]
fn an_unknown_stored_event_name_lists_the_available_names() {
    rt().block_on(async {
        let second = ("user:teleported", "{}");
        let err = load_after_creation(second, LoadValidation::default())
            .await
            .unwrap_err();
        let Error::UnknownEventName {
            name,
            version,
            available,
            ..
        } = &err
        else {
            panic!("expected an unknown name, got {err:?}");
        };
        assert_eq!(name, "user:teleported");
        assert_eq!(*version, Some(2));
        assert!(available.contains(&"user:created"));
        assert!(err.to_string().contains("user:name_updated"), "{err}");
    });
}

#[test]
fn a_stream_not_starting_with_the_initial_event_is_an_error() {
    rt().block_on(async {
        let store = Arc::new(MemoryStorage::new());
        let repo = Repository::<User, _>::new(store.clone());
        write_raw(&store, "u1", &[("user:name_updated", r#"{"name":"A"}"#)]).await;
        let err = repo.find_one("u1").await.unwrap_err();
        assert!(matches!(
            decode_reason(&err),
            DecodeReason::NotInitial {
                expected: "user:created"
            }
        ));
    });
}

#[test]
fn the_memory_store_reads_ranges_and_the_global_log() {
    rt().block_on(async {
        let store = MemoryStorage::new();
        write_raw(
            &store,
            "a",
            &[("user:created", "{}"), ("user:tagged", "{}")],
        )
        .await;
        write_raw(&store, "b", &[("user:created", "{}")]).await;
        write_raw(&store, "a", &[("user:tagged", "{}")]).await;
        let a = store
            .read_stream("user", "a", ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(
            a.iter()
                .map(|e| (e.version, e.position))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 2), (3, 4)]
        );
        let middle = store
            .read_stream(
                "user",
                "a",
                ReadRange {
                    from_version: 2,
                    to_version: Some(2),
                },
            )
            .await
            .unwrap();
        assert_eq!(middle.len(), 1);
        assert_eq!(middle[0].version, 2);
        let first = store
            .read_log(&LogRequest::new(LogCursor::START, 2))
            .await
            .unwrap();
        assert!(!first.at_head);
        let page = store
            .read_log(&LogRequest::new(first.cursor, 2))
            .await
            .unwrap();
        assert_eq!(
            page.events().map(|e| e.position).collect::<Vec<_>>(),
            [3, 4]
        );
        let rest = store
            .read_log(&LogRequest::new(page.cursor, 10))
            .await
            .unwrap();
        assert!(rest.at_head && rest.entries.is_empty());
        assert!(
            store
                .read_stream("order", "a", ReadRange::ALL)
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn the_memory_store_checks_expected_versions() {
    rt().block_on(async {
        let store = MemoryStorage::new();
        write_raw(&store, "a", &[("user:created", "{}")]).await;
        let e = NewEvent::new(ventyd::UuidV7.event_id(), "user:tagged", "{}");
        for (expected, ok) in [
            (ExpectedVersion::NoStream, false),
            (ExpectedVersion::Exact(2), false),
            (ExpectedVersion::Exact(0), false),
        ] {
            let r = store
                .append(AppendRequest::new(
                    "user",
                    "a",
                    expected,
                    std::slice::from_ref(&e),
                ))
                .await;
            assert_eq!(r.is_ok(), ok, "{expected:?}: {r:?}");
        }
        assert_eq!(store.len(), 1, "rejected appends store nothing");
    });
}

#[test]
fn metadata_always_reads_back_what_it_writes() {
    // A free-form key named like a built-in field sets that field...
    let m = Metadata::new()
        .actor("a")
        .with("actor", "b")
        .with("reason", 42);
    assert_eq!(m.actor.as_deref(), Some("b"));
    assert_eq!(m.reason.as_deref(), Some("42"));
    assert!(m.extra.is_empty());
    // ...and one put into `extra` by hand is not written over the field.
    let mut m = Metadata::new().actor("a").with("ip", "127.0.0.1");
    m.extra.insert("actor".into(), serde_json::json!(7));
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(json, r#"{"actor":"a","ip":"127.0.0.1"}"#);
    let back: Metadata = serde_json::from_str(&json).unwrap();
    assert_eq!(back.actor.as_deref(), Some("a"));
    assert_eq!(back.extra.len(), 1);
}

#[test]
fn a_commit_records_the_schema_each_body_was_checked_against() {
    rt().block_on(async {
        let repo = Repository::<User, _>::new(MemoryStorage::new());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("A".into()).unwrap();
        repo.commit(&mut user).await.unwrap();
        let stored = repo
            .storage()
            .read_stream("user", user.entity_id(), ReadRange::ALL)
            .await
            .unwrap();
        let schemas = UserEvent::schemas();
        for (e, name) in stored.iter().zip(["user:created", "user:name_updated"]) {
            let print = schemas.by_name(name).unwrap().fingerprint();
            assert_eq!(e.checked_schema, Some(print), "{name}");
        }
        assert_ne!(stored[0].checked_schema, stored[1].checked_schema);
    });
}

/// Writes one user whose second event breaks its schema, recorded as checked against `record`.
async fn user_with_bad_name(store: &MemoryStorage, id: &str, record: Option<u64>) {
    let created = NewEvent::new(
        ventyd::UuidV7.event_id(),
        "user:created",
        r#"{"email":"a@example.com","name":null}"#,
    );
    let mut renamed = NewEvent::new(
        ventyd::UuidV7.event_id(),
        "user:name_updated",
        r#"{"name":""}"#,
    );
    if let Some(record) = record {
        renamed = renamed.checked_schema(record);
    }
    store
        .append(AppendRequest::new(
            "user",
            id,
            ExpectedVersion::NoStream,
            &[created, renamed],
        ))
        .await
        .unwrap();
}

#[test]
fn load_validation_checks_bodies_without_a_record_of_the_current_schema() {
    use ventyd::LoadValidation::{Always, Never, Unverified};
    rt().block_on(async {
        let store = Arc::new(MemoryStorage::new());
        let current = UserEvent::schemas()
            .by_name("user:name_updated")
            .unwrap()
            .fingerprint();
        user_with_bad_name(&store, "none", None).await;
        user_with_bad_name(&store, "stale", Some(current ^ 1)).await;
        user_with_bad_name(&store, "current", Some(current)).await;
        let load = |validation, id: &'static str| {
            let repo = Repository::<User, _>::new(store.clone()).load_validation(validation);
            async move { repo.find_one(id).await.map(|u| u.is_some()) }
        };
        // No record, or a record of another schema: checked, and refused.
        for id in ["none", "stale"] {
            let err = load(Unverified, id).await.unwrap_err();
            assert!(
                matches!(decode_reason(&err), DecodeReason::Schema(_)),
                "{id}: {err}"
            );
        }
        // A record of this very schema: trusted by default, checked when asked to.
        assert!(load(Unverified, "current").await.unwrap());
        assert!(matches!(
            decode_reason(&load(Always, "current").await.unwrap_err()),
            DecodeReason::Schema(_)
        ));
        // Trusting the store checks nothing, but still decodes strictly.
        for id in ["none", "stale", "current"] {
            assert!(load(Never, id).await.unwrap());
        }
    });
}

#[test]
fn repository_clones_share_the_store_across_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let repo = Repository::<User, _>::new(Arc::new(MemoryStorage::new()));
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let repo = repo.clone();
                tokio::spawn(async move {
                    let mut user = repo.create(alice()).unwrap();
                    user.update_name(format!("user {i}")).unwrap();
                    repo.commit(&mut user).await.unwrap();
                    user.entity_id().to_owned()
                })
            })
            .collect();
        for task in tasks {
            let id = task.await.unwrap();
            let loaded = repo
                .find_one(&id)
                .await
                .unwrap()
                .expect("stored by a clone");
            assert_eq!(loaded.version(), 2);
        }
        assert_eq!(repo.storage().len(), 8);
    });
}

#[test]
fn a_stream_with_a_second_initial_event_does_not_load() {
    rt().block_on(async {
        let again = ("user:created", r#"{"email":"b@example.com"}"#);
        for validation in [
            LoadValidation::Unverified,
            LoadValidation::Always,
            LoadValidation::Never,
        ] {
            let err = load_after_creation(again, validation).await.unwrap_err();
            assert!(
                matches!(decode_reason(&err), DecodeReason::InitialAgain),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains("at version 2"), "{message}");
            assert!(message.contains("user:created"), "{message}");
        }
    });
}
