//! Through the repository: entities committed, loaded, batched and updated concurrently on top
//! of the store, so that the adapter and the repository are checked to agree end to end.

use super::*;
use crate::metadata::Metadata;

mod counter {
    use crate::{Aggregate, Reducer, event, mutations};

    #[event(entity = "conformance_counter")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum CounterEvent {
        #[event(initial)]
        Opened {
            label: String,
        },
        Added {
            amount: i64,
        },
    }

    #[derive(Aggregate, Debug, Clone, PartialEq)]
    #[aggregate(event = CounterEvent)]
    pub struct Counter {
        pub label: String,
        pub total: i64,
    }

    impl Reducer for Counter {
        fn init(opened: &CounterOpened) -> Self {
            Counter {
                label: opened.label.clone(),
                total: 0,
            }
        }

        fn apply(&mut self, event: &CounterEvent) {
            match event {
                // The conformance suite checks that `apply` never sees the initial event.
                CounterEvent::Opened { .. } => unreachable!("apply was given the initial event"),
                CounterEvent::Added { amount } => self.total += amount,
            }
        }
    }

    #[mutations]
    impl Counter {
        #[mutation]
        pub fn add(&self, amount: i64) -> CounterEvent {
            CounterEvent::Added { amount }
        }
    }

    /// A second aggregate type, for batches across types.
    #[event(entity = "conformance_note")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum NoteEvent {
        #[event(initial)]
        Written { text: String },
    }

    #[derive(Aggregate, Debug, Clone, PartialEq)]
    #[aggregate(event = NoteEvent)]
    pub struct Note {
        pub text: String,
    }

    impl Reducer for Note {
        fn init(written: &NoteWritten) -> Self {
            Note {
                text: written.text.clone(),
            }
        }

        fn apply(&mut self, _: &NoteEvent) {}
    }
}

/// A [`Repository`](crate::Repository) over the store: create, commit with metadata, load (same
/// state, version and events, positions, commit times and metadata included), time travel, a
/// stale writer's conflict, and the reload-and-retry helper. The adapter is what the repository
/// stands on, so this checks that the two agree end to end.
pub async fn repository_round_trip<S: Storage + Clone>(store: &S) {
    use counter::{Counter, CounterMutations, CounterOpened};

    let repo = crate::Repository::<Counter, S>::new(store.clone());
    let mut counter = repo
        .create(CounterOpened {
            label: "conformance ✓ 'q' %".to_owned(),
        })
        .expect("creating a counter");
    counter.add(5).expect("add 5");
    counter.add(-2).expect("add -2");
    let committed = repo
        .commit_with(
            &mut counter,
            Metadata::new().actor("conformance").reason("round trip"),
        )
        .await
        .unwrap_or_else(|e| panic!("the first commit failed: {e} ({e:?})"));
    assert_eq!((committed.events, committed.version), (3, 3));
    assert!(
        committed.recorded_at.is_some() && committed.last_position.is_some(),
        "a commit that stored events reports where and when: {committed:?}"
    );
    let id = counter.entity_id().to_owned();

    let mut loaded = repo
        .find_one(&id)
        .await
        .unwrap_or_else(|e| panic!("loading the counter failed: {e} ({e:?})"))
        .expect("a committed counter must be found");
    assert_eq!(loaded.state(), counter.state(), "the loaded state");
    assert_eq!(loaded.version(), 3, "the loaded version");
    let before: Vec<_> = counter.events().cloned().collect();
    let after: Vec<_> = loaded.events().cloned().collect();
    assert_eq!(
        after, before,
        "loaded events (ids, times, positions, commit times, metadata, bodies) must equal the committed ones"
    );
    assert_eq!(after[0].metadata().actor.as_deref(), Some("conformance"));
    assert_eq!(after[2].recorded_at(), committed.recorded_at);

    loaded.add(10).expect("add 10");
    repo.commit(&mut loaded)
        .await
        .unwrap_or_else(|e| panic!("the second commit failed: {e} ({e:?})"));

    let past = repo
        .find_one_at(&id, 2)
        .await
        .unwrap_or_else(|e| panic!("time travel failed: {e} ({e:?})"))
        .expect("version 2 exists");
    assert_eq!(
        (past.version(), past.state().total),
        (2, 5),
        "the counter at version 2"
    );

    counter.add(1).expect("add 1");
    let err = repo
        .commit(&mut counter)
        .await
        .expect_err("a stale writer's commit must fail");
    assert_conflict(
        "a stale writer",
        &err,
        ("conformance_counter", &id),
        ExpectedVersion::Exact(3),
        4,
    );

    let updated = repo
        .update(&id, 3, |c| c.add(100))
        .await
        .unwrap_or_else(|e: Error| panic!("update failed: {e} ({e:?})"));
    assert!(updated.is_some(), "update must find the counter");
    let last = repo
        .find_one(&id)
        .await
        .unwrap_or_else(|e| panic!("loading the counter failed: {e} ({e:?})"))
        .expect("the counter exists");
    assert_eq!((last.version(), last.state().total), (5, 113));

    let stored = read(store, ("conformance_counter", &id)).await;
    let names: Vec<&str> = stored.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conformance_counter:opened",
            "conformance_counter:added",
            "conformance_counter:added",
            "conformance_counter:added",
            "conformance_counter:added"
        ]
    );
    assert!(
        repo.find_one(&unique_id("no-counter"))
            .await
            .unwrap_or_else(|e| panic!("loading an unknown counter failed: {e}"))
            .is_none(),
        "an unknown id loads as None"
    );
}

/// A [`Batch`](crate::Batch) of two entities of different aggregate types and a document
/// commits as one unit: both load afterwards, the document is at revision 1 with the batch's
/// commit time, and every event carries that time. A batch with one stale entity fails as a
/// whole with that entity's conflict: nothing of it is stored, and every entity keeps its
/// queue, so the batch can be rebuilt and committed again.
pub async fn a_repository_batch_commits_entities_and_documents_together<S: Storage + Clone>(
    store: &S,
) {
    use counter::{Counter, CounterMutations, CounterOpened, Note, NoteWritten};

    let counters = crate::Repository::<Counter, S>::new(store.clone());
    let notes = crate::Repository::<Note, S>::new(store.clone());
    let collection = unique_name("batch-views");
    let mut counter = counters
        .create(CounterOpened {
            label: "batched".to_owned(),
        })
        .expect("a counter");
    let mut note = notes
        .create(NoteWritten {
            text: "batched ✓".to_owned(),
        })
        .expect("a note");
    let key = counter.entity_id().to_owned();
    let done = counters
        .batch()
        .entity(&mut counter)
        .entity(&mut note)
        .put_document(
            &collection,
            &key,
            ExpectedRevision::Absent,
            r#"{"total":0}"#,
        )
        .commit()
        .await
        .unwrap_or_else(|e| panic!("committing a batch failed: {e} ({e:?})"));
    assert_eq!(done.documents, [Some(1)]);
    assert_eq!(
        done.entities
            .iter()
            .map(|c| (c.events, c.version, c.recorded_at))
            .collect::<Vec<_>>(),
        [
            (1, 1, Some(done.recorded_at)),
            (1, 1, Some(done.recorded_at))
        ],
        "each entity of the batch must report its event at version 1 and the batch's commit time"
    );
    let loaded = counters
        .find_one(&key)
        .await
        .expect("loading the counter")
        .expect("the batched counter");
    assert_eq!(loaded.state().label, "batched");
    let loaded_note = notes
        .find_one(note.entity_id())
        .await
        .expect("loading the note")
        .expect("the batched note");
    assert_eq!(loaded_note.state().text, "batched ✓");
    let doc = read_document(store, &collection, &key).await;
    check_document(
        "the batch's document",
        doc.as_ref(),
        (&collection, &key),
        1,
        r#"{"total":0}"#,
        done.recorded_at,
    );

    // Another writer moves the counter on; a batch holding the stale counter fails whole.
    let mut other = counters
        .find_one(&key)
        .await
        .expect("loading")
        .expect("the counter");
    other.add(1).expect("add 1");
    counters
        .commit(&mut other)
        .await
        .expect("the other writer's commit");
    counter.add(2).expect("add 2");
    let mut fresh_note = notes
        .create(NoteWritten {
            text: "never".to_owned(),
        })
        .expect("a note");
    let err = counters
        .batch()
        .entity(&mut fresh_note)
        .entity(&mut counter)
        .put_document(
            &collection,
            &key,
            ExpectedRevision::Exact(1),
            r#"{"total":2}"#,
        )
        .commit()
        .await
        .expect_err("a batch with a stale entity must fail");
    assert_conflict(
        "a batch with a stale counter",
        &err,
        ("conformance_counter", &key),
        ExpectedVersion::Exact(1),
        2,
    );
    assert!(
        counter.has_uncommitted() && fresh_note.has_uncommitted(),
        "a failed batch must leave every entity's queue as it was"
    );
    assert!(
        notes
            .find_one(fresh_note.entity_id())
            .await
            .expect("loading")
            .is_none(),
        "the other entity of a failed batch must not be stored"
    );
    let doc = read_document(store, &collection, &key).await;
    check_document(
        "after the failed batch",
        doc.as_ref(),
        (&collection, &key),
        1,
        r#"{"total":0}"#,
        done.recorded_at,
    );
}

/// Eight tasks, each with its own clone of a repository, add 1 to one counter five times with
/// [`Repository::update`](crate::Repository::update) at once: conflicts are retried on a
/// reload, and the counter ends at 40 with version 41, every increment stored once. This is the
/// repository's answer to contention, and it holds only if the store's conflicts are exact.
pub async fn concurrent_repository_updates_all_land<S: Storage + Clone>(store: &S) {
    use counter::{Counter, CounterMutations, CounterOpened};
    const TASKS: usize = 8;
    const EACH: usize = 5;

    let repo = crate::Repository::<Counter, S>::new(store.clone());
    let mut counter = repo
        .create(CounterOpened {
            label: "contended".to_owned(),
        })
        .expect("a counter");
    repo.commit(&mut counter)
        .await
        .expect("creating the counter");
    let id = counter.entity_id().to_owned();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let (repo, barrier, id) = (repo.clone(), barrier.clone(), id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                for k in 0..EACH {
                    let policy = crate::RetryPolicy::new().attempts(10_000);
                    let found = repo
                        .update_with(&id, &policy, |c| c.add(1))
                        .await
                        .unwrap_or_else(|e: Error| {
                            panic!("task {t}, update {k} failed: {e} ({e:?})")
                        });
                    assert!(found.is_some(), "task {t}: the counter must be found");
                }
            })
        })
        .collect();
    for h in handles {
        join(h).await;
    }
    let last = repo
        .find_one(&id)
        .await
        .expect("loading")
        .expect("the counter");
    assert_eq!(
        (last.state().total, last.version()),
        ((TASKS * EACH) as i64, (TASKS * EACH) as u64 + 1),
        "every concurrent update must be stored exactly once"
    );
}
