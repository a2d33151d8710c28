//! Entities: creation, mutations, validation, rollback, queue limit, history, read-only form.

mod common;

use common::*;
use ventyd::prelude::*;
use ventyd::{CreateOptions, EntityConfig, Error, FixedClock, SequentialIds, Timestamp};

#[test]
fn create_applies_and_queues_the_initial_event() {
    let user = Entity::<User>::create(alice()).unwrap();
    assert_eq!(user.entity_name(), "user");
    assert_eq!(user.version(), 1);
    assert_eq!(user.committed_version(), 0);
    assert_eq!(user.state().email, "alice@example.com");
    let queued: Vec<_> = user.queued_events().collect();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].event_name(), "user:created");
    assert_eq!(queued[0].version(), 1);
    assert_eq!(queued[0].position(), None);
    assert_eq!(queued[0].entity_id(), user.entity_id());
    // UUID v7 by default: the id carries the version nibble 7.
    assert_eq!(queued[0].event_id().as_uuid().unwrap().get_version_num(), 7);
}

#[test]
fn create_takes_ids_and_time_from_options() {
    let at: Timestamp = "2026-01-02T03:04:05.678Z".parse().unwrap();
    let event_id = ventyd::Uuid::from_u128(42);
    let user = Entity::<User>::create_with(
        alice(),
        CreateOptions::default()
            .entity_id("user-1")
            .event_id(event_id)
            .event_created_at(at),
    )
    .unwrap();
    assert_eq!(user.entity_id(), "user-1");
    let e = user.events().next().unwrap();
    assert_eq!(*e.event_id(), event_id);
    assert_eq!(e.event_created_at(), at);
}

#[test]
fn create_rejects_an_invalid_initial_body() {
    let err = Entity::<User>::create(UserCreated {
        email: "not-an-email".into(),
        name: None,
    })
    .unwrap_err();
    let v = err.as_validation().expect("a validation error");
    assert_eq!(v.event_name, "user:created");
    assert_eq!(v.violations.len(), 1);
    assert_eq!(v.violations[0].pointer, "/email");
    assert!(err.to_string().contains("user:created"), "{err}");
}

#[test]
fn a_mutation_validates_applies_and_queues() {
    let mut user = Entity::<User>::create(alice()).unwrap();
    user.update_name("Alice Cooper".into()).unwrap();
    assert_eq!(user.state().name.as_deref(), Some("Alice Cooper"));
    assert_eq!(user.version(), 2);
    let names: Vec<_> = user.events().map(|e| e.event_name()).collect();
    assert_eq!(names, ["user:created", "user:name_updated"]);
    assert_eq!(
        user.events().last().unwrap().event(),
        &UserEvent::NameUpdated {
            name: "Alice Cooper".into()
        }
    );
}

#[test]
fn a_body_failing_its_schema_leaves_the_entity_unchanged() {
    let mut user = Entity::<User>::create(alice()).unwrap();
    let before = user.clone();
    let err = user.update_name(String::new()).unwrap_err();
    let MutationError::Ventyd(Error::Validation(v)) = &err else {
        panic!("expected a validation error, got {err:?}");
    };
    assert_eq!(v.event_name, "user:name_updated");
    assert_eq!(v.entity_id.as_deref(), Some(user.entity_id()));
    assert_eq!(v.violations[0].pointer, "/name");
    assert!(err.to_string().contains("/name"), "{err}");
    assert_eq!(user.state(), before.state());
    assert_eq!(user.version(), before.version());
    assert_eq!(user.queued_events().len(), before.queued_events().len());
}

#[test]
fn a_business_rule_failure_leaves_the_entity_unchanged() {
    let mut user = Entity::<User>::create(alice()).unwrap();
    user.delete("spam".into()).unwrap();
    let version = user.version();
    assert!(matches!(
        user.update_name("Bob".into()),
        Err(MutationError::Rejected(UserError::Deleted))
    ));
    assert_eq!(user.version(), version);
    assert_eq!(user.state().name, None);
}

#[test]
fn several_returned_events_are_all_validated_before_any_is_applied() {
    let mut user = Entity::<User>::create(alice()).unwrap();
    user.tag_all(vec!["a".into(), "b".into()]).unwrap();
    assert_eq!(user.state().tags, ["a", "b"]);
    assert_eq!(user.version(), 3);

    // The second tag is too long: neither is applied.
    let err = user
        .tag_all(vec!["c".into(), "toolong".into()])
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
    assert_eq!(user.state().tags, ["a", "b"]);
    assert_eq!(user.version(), 3);
}

#[test]
fn dispatching_mutations_see_their_own_events() {
    let mut user = Entity::<User>::create(alice()).unwrap();
    // The limit is checked against the state after each dispatch.
    let n = user.add_tags(vec!["a".into(), "b".into()], 2).unwrap();
    assert_eq!(n, 2);
    assert_eq!(user.version(), 3);
}

#[test]
fn a_failing_dispatching_mutation_undoes_what_it_dispatched() {
    let mut user = Entity::<User>::create(alice()).unwrap();
    user.add_tags(vec!["a".into()], 10).unwrap();
    // Two tags fit, the third breaks the limit after two were dispatched and applied.
    let err = user
        .add_tags(vec!["b".into(), "c".into(), "d".into()], 3)
        .unwrap_err();
    assert!(matches!(
        err,
        MutationError::Rejected(UserError::TooManyTags)
    ));
    assert_eq!(user.state().tags, ["a"]);
    assert_eq!(user.version(), 2);
    assert_eq!(user.queued_events().len(), 2);

    // A validation failure in the middle undoes the earlier dispatches too.
    let err = user
        .add_tags(vec!["b".into(), "toolong".into()], 10)
        .unwrap_err();
    assert!(matches!(err, MutationError::Ventyd(Error::Validation(_))));
    assert_eq!(user.state().tags, ["a"]);
    assert_eq!(user.version(), 2);
}

#[test]
fn the_queue_limit_is_enforced_without_changing_the_entity() {
    let repo = Repository::<User, _>::with_config(
        MemoryStorage::new(),
        EntityConfig::default().with_queue_limit(3),
    );
    let mut user = repo.create(alice()).unwrap();
    user.tag_all(vec!["a".into(), "b".into()]).unwrap();
    let err = user.tag_all(vec!["c".into()]).unwrap_err();
    let Error::QueueOverflow {
        limit, entity_id, ..
    } = &err
    else {
        panic!("expected a queue overflow, got {err:?}");
    };
    assert_eq!(*limit, 3);
    assert_eq!(entity_id, user.entity_id());
    assert_eq!(user.version(), 3);
    assert_eq!(user.state().tags, ["a", "b"]);
    assert!(err.to_string().contains("commit"), "{err}");
}

#[test]
fn the_default_queue_limit_is_ten_thousand() {
    assert_eq!(EntityConfig::default().queue_limit(), 10_000);
    let mut user = Entity::<User>::create(alice()).unwrap();
    let tags: Vec<String> = (0..9_999).map(|i| (i % 100).to_string()).collect();
    user.tag_all(tags).unwrap();
    assert_eq!(user.queued_events().len(), 10_000);
    assert!(matches!(
        user.update_name("x".into()),
        Err(MutationError::Ventyd(Error::QueueOverflow {
            limit: 10_000,
            ..
        }))
    ));
}

#[test]
fn clock_and_ids_are_injectable() {
    let clock = FixedClock::new("2026-11-26T00:00:00.000Z".parse().unwrap());
    let repo = Repository::<User, _>::with_config(
        MemoryStorage::new(),
        EntityConfig::default()
            .with_clock(clock.clone())
            .with_ids(SequentialIds::default()),
    );
    let mut user = repo.create(alice()).unwrap();
    clock.advance_millis(1_234);
    user.update_name("Alice".into()).unwrap();
    let events: Vec<_> = user.events().collect();
    assert_eq!(user.entity_id(), "00000000-0000-7000-8000-000000000001");
    assert_eq!(
        events[0].event_id().to_string(),
        "00000000-0000-7000-8000-000000000002"
    );
    assert_eq!(
        events[1].event_created_at().to_string(),
        "2026-11-26T00:00:01.234Z"
    );
}

#[test]
fn the_read_only_form_keeps_state_and_version() {
    let mut user = Entity::<User>::create(alice()).unwrap();
    user.update_name("A".into()).unwrap();
    let ro = user.into_readonly();
    assert_eq!(ro.version(), 2);
    assert_eq!(ro.state().name.as_deref(), Some("A"));
    let loaded = ReadonlyEntity::load("u1", ro.state().clone(), 7);
    assert_eq!(loaded.entity_id(), "u1");
    assert_eq!(loaded.entity_name(), "user");
    assert_eq!(loaded.version(), 7);
}

#[test]
fn event_names_are_generated_and_checked() {
    assert_eq!(
        UserEvent::NAMES,
        [
            "user:created",
            "user:name_updated",
            "user:removed",
            "user:tagged"
        ]
    );
    assert_eq!(UserEvent::INITIAL_NAME, "user:created");
    assert_eq!(UserEvent::name_index("user:removed"), Some(2));
    assert_eq!(UserEvent::name_index("user:deleted"), None);
    const REMOVED: &str = ventyd::event_name!(UserEvent, "user:removed");
    assert_eq!(REMOVED, "user:removed");
}
