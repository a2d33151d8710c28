//! Units of work at the repository level: atomic commits of several entities (a transfer between
//! two accounts), retries after lost outcomes (also when the entity queued more events in the
//! meantime, and when commits are cancelled at random points), the retry policy, stores chosen
//! at run time, and wrappers that forward to a store.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use common::{FlakyStorage, rt};
use ventyd::prelude::*;
use ventyd::storage::{AnyStorage, CommitOutcome, Forward, ReadRange, UnitOfWork};
use ventyd::{Error, ExpectedRevision, ExpectedVersion, RetryPolicy, StorageErrorKind};

#[event(entity = "account")]
#[derive(Debug, Clone, PartialEq)]
pub enum AccountEvent {
    #[event(initial)]
    Opened {
        owner: String,
    },
    Deposited {
        amount: i64,
    },
    Withdrawn {
        amount: i64,
    },
}

#[derive(Aggregate, Debug, Clone, PartialEq)]
#[aggregate(event = AccountEvent)]
pub struct Account {
    pub owner: String,
    pub balance: i64,
}

impl Reducer for Account {
    fn init(o: &AccountOpened) -> Self {
        Account {
            owner: o.owner.clone(),
            balance: 0,
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { .. } => {}
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("insufficient funds: balance {balance}, asked {asked}")]
    InsufficientFunds { balance: i64, asked: i64 },
    #[error(transparent)]
    Ventyd(#[from] Error),
}

#[mutations]
impl Account {
    #[mutation]
    pub fn deposit(&self, amount: i64) -> AccountEvent {
        AccountEvent::Deposited { amount }
    }

    #[mutation]
    pub fn withdraw(&self, amount: i64) -> Result<AccountEvent, AccountError> {
        if self.balance < amount {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                asked: amount,
            });
        }
        Ok(AccountEvent::Withdrawn { amount })
    }
}

fn open(owner: &str) -> AccountOpened {
    AccountOpened {
        owner: owner.into(),
    }
}

async fn balance<S: Storage>(repo: &Repository<Account, S>, id: &str) -> i64 {
    repo.find_one(id)
        .await
        .unwrap()
        .expect("the account exists")
        .state()
        .balance
}

#[test]
fn a_transfer_debits_and_credits_both_accounts_in_one_commit() {
    rt().block_on(async {
        let repo = Repository::<Account, _>::new(MemoryStorage::new());
        let mut a = repo.create(open("alice")).unwrap();
        let mut b = repo.create(open("bob")).unwrap();
        a.deposit(100).unwrap();
        repo.batch()
            .entity(&mut a)
            .entity(&mut b)
            .commit()
            .await
            .unwrap();

        a.withdraw(30).unwrap();
        b.deposit(30).unwrap();
        let done = repo
            .batch()
            .entity(&mut a)
            .entity(&mut b)
            .metadata(Metadata::new().actor("teller-7"))
            .commit()
            .await
            .unwrap();
        assert_eq!(done.entities.len(), 2);
        assert_eq!((done.entities[0].version, done.entities[1].version), (3, 2));
        assert_eq!(done.entities[0].recorded_at, Some(done.recorded_at));
        assert_eq!(done.entities[1].recorded_at, Some(done.recorded_at));
        assert!(!a.has_uncommitted() && !b.has_uncommitted());
        assert_eq!(balance(&repo, a.entity_id()).await, 70);
        assert_eq!(balance(&repo, b.entity_id()).await, 30);

        let loaded = repo.find_one(b.entity_id()).await.unwrap().unwrap();
        let last = loaded.events().last().unwrap();
        assert_eq!(last.metadata().actor.as_deref(), Some("teller-7"));
        assert_eq!(last.recorded_at(), Some(done.recorded_at));
    });
}

#[test]
fn a_transfer_with_one_stale_account_stores_neither_side() {
    rt().block_on(async {
        let repo = Repository::<Account, _>::new(MemoryStorage::new());
        let mut a = repo.create(open("alice")).unwrap();
        let mut b = repo.create(open("bob")).unwrap();
        a.deposit(100).unwrap();
        repo.batch()
            .entity(&mut a)
            .entity(&mut b)
            .commit()
            .await
            .unwrap();

        // Another writer moves bob on after we loaded him.
        repo.update(b.entity_id(), 1, |other| other.deposit(5))
            .await
            .unwrap()
            .unwrap();

        a.withdraw(30).unwrap();
        b.deposit(30).unwrap();
        let err = repo
            .batch()
            .entity(&mut a)
            .entity(&mut b)
            .commit()
            .await
            .unwrap_err();
        match &err {
            Error::Concurrency {
                entity_name,
                entity_id,
                expected,
                actual,
            } => {
                assert_eq!(entity_name, "account");
                assert_eq!(
                    entity_id,
                    b.entity_id(),
                    "the error names the stale account"
                );
                assert_eq!(*expected, ExpectedVersion::Exact(1));
                assert_eq!(*actual, 2);
            }
            other => panic!("expected a conflict on bob, got {other:?}"),
        }
        assert_eq!(
            balance(&repo, a.entity_id()).await,
            100,
            "alice not debited"
        );
        assert_eq!(balance(&repo, b.entity_id()).await, 5, "bob not credited");
        assert_eq!(
            a.queued_events().len(),
            1,
            "nothing lost from alice's queue"
        );
        assert_eq!(b.queued_events().len(), 1, "nothing lost from bob's queue");
    });
}

#[test]
fn a_batch_checks_an_entity_it_only_read() {
    rt().block_on(async {
        let repo = Repository::<Account, _>::new(MemoryStorage::new());
        let mut a = repo.create(open("alice")).unwrap();
        let mut rules = repo.create(open("limits")).unwrap();
        repo.batch()
            .entity(&mut a)
            .entity(&mut rules)
            .commit()
            .await
            .unwrap();

        repo.update(rules.entity_id(), 1, |r| r.deposit(1))
            .await
            .unwrap()
            .unwrap();
        // A decision about alice that read `rules` at version 1: refused, as `rules` moved.
        a.deposit(10).unwrap();
        let err = repo
            .batch()
            .entity(&mut a)
            .entity(&mut rules)
            .commit()
            .await
            .unwrap_err();
        assert!(err.is_concurrency(), "{err:?}");
        assert_eq!(balance(&repo, a.entity_id()).await, 0);
    });
}

#[test]
fn a_batch_writes_documents_with_its_events_or_not_at_all() {
    rt().block_on(async {
        let store = MemoryStorage::new();
        let repo = Repository::<Account, _>::new(store);
        let mut a = repo.create(open("alice")).unwrap();
        let done = repo
            .batch()
            .entity(&mut a)
            .put_document(
                "owners",
                "alice",
                ExpectedRevision::Absent,
                r#"{"accounts":1}"#,
            )
            .commit()
            .await
            .unwrap();
        assert_eq!(done.documents, [Some(1)]);
        let doc = repo
            .storage()
            .read_document("owners", "alice")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((doc.revision, doc.updated_at), (1, done.recorded_at));

        // A document conflict fails the events too.
        a.deposit(10).unwrap();
        let err = repo
            .batch()
            .entity(&mut a)
            .put_document("owners", "alice", ExpectedRevision::Absent, "{}")
            .commit()
            .await
            .unwrap_err();
        match &err {
            Error::DocumentConflict {
                collection,
                key,
                expected,
                actual,
            } => {
                assert_eq!((collection.as_str(), key.as_str()), ("owners", "alice"));
                assert_eq!((*expected, *actual), (ExpectedRevision::Absent, Some(1)));
            }
            other => panic!("expected a document conflict, got {other:?}"),
        }
        assert!(err.is_conflict() && !err.is_retryable());
        assert_eq!(
            balance(&repo, a.entity_id()).await,
            0,
            "the deposit is not stored"
        );
        assert_eq!(a.queued_events().len(), 1);
    });
}

#[test]
fn a_batch_whose_outcome_was_lost_is_retried_without_duplicates() {
    rt().block_on(async {
        let store = Arc::new(FlakyStorage::default());
        let repo = Repository::<Account, _>::new(store.clone());
        let mut a = repo.create(open("alice")).unwrap();
        let mut b = repo.create(open("bob")).unwrap();
        store.fail_after.store(1, Ordering::SeqCst);
        let err = repo
            .batch()
            .entity(&mut a)
            .entity(&mut b)
            .put_document("owners", "alice", ExpectedRevision::Absent, "{}")
            .commit()
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::OutcomeUnknown));
        assert_eq!(store.inner.len(), 2, "the store did write");
        assert!(
            a.has_uncommitted() && b.has_uncommitted(),
            "the queues are kept"
        );

        // The same batch again: recognised, nothing stored twice, the document not written again
        // (its Absent expectation would fail if it were).
        let done = repo
            .batch()
            .entity(&mut a)
            .entity(&mut b)
            .put_document("owners", "alice", ExpectedRevision::Absent, "{}")
            .commit()
            .await
            .unwrap();
        assert_eq!(store.inner.len(), 2);
        assert_eq!(done.documents, [Some(1)]);
        assert!(!a.has_uncommitted() && !b.has_uncommitted());
    });
}

#[test]
fn a_lost_commit_followed_by_one_more_event_stores_only_the_new_one() {
    rt().block_on(async {
        let store = Arc::new(FlakyStorage::default());
        let repo = Repository::<Account, _>::new(store.clone());
        let mut a = repo.create(open("alice")).unwrap();
        a.deposit(10).unwrap();
        store.fail_after.store(1, Ordering::SeqCst);
        assert!(repo.commit(&mut a).await.is_err());
        assert_eq!(store.inner.len(), 2);

        // The entity goes on: one more event, then the commit is retried. Before, this failed
        // forever with "already stored with different content".
        a.deposit(5).unwrap();
        let committed = repo.commit(&mut a).await.unwrap();
        assert_eq!((committed.events, committed.version), (3, 3));
        assert_eq!(store.inner.len(), 3, "the first two are not stored twice");
        let loaded = repo.find_one(a.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.state().balance, 15);
        let positions: Vec<_> = loaded.events().map(|e| e.position().unwrap()).collect();
        assert_eq!(positions, [1, 2, 3]);
        assert_eq!(
            a.events().map(|e| e.position()).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3)]
        );
    });
}

#[test]
fn a_lost_commit_then_another_writer_then_one_more_event_is_a_conflict_a_reload_settles() {
    rt().block_on(async {
        let store = Arc::new(FlakyStorage::default());
        let repo = Repository::<Account, _>::new(store.clone());
        let mut a = repo.create(open("alice")).unwrap();
        store.fail_after.store(1, Ordering::SeqCst);
        assert!(repo.commit(&mut a).await.is_err());
        repo.update(a.entity_id(), 1, |other| other.deposit(7))
            .await
            .unwrap()
            .unwrap();

        a.deposit(5).unwrap();
        let err = repo.commit(&mut a).await.unwrap_err();
        assert!(
            err.is_concurrency(),
            "a typed conflict, not a storage error: {err:?}"
        );
        let reloaded = repo.find_one(a.entity_id()).await.unwrap().unwrap();
        assert_eq!((reloaded.version(), reloaded.state().balance), (2, 7));
    });
}

#[test]
fn update_retries_a_lost_outcome_without_running_the_change_twice() {
    rt().block_on(async {
        let store = Arc::new(FlakyStorage::default());
        let repo = Repository::<Account, _>::new(store.clone());
        let mut a = repo.create(open("alice")).unwrap();
        repo.commit(&mut a).await.unwrap();

        store.fail_after.store(1, Ordering::SeqCst);
        let runs = AtomicUsize::new(0);
        repo.update(a.entity_id(), 3, |acc| {
            runs.fetch_add(1, Ordering::SeqCst);
            acc.deposit(10)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the change ran once");
        assert_eq!(balance(&repo, a.entity_id()).await, 10, "credited once");

        // A busy store is retried too; with retries of storage errors off, it is returned.
        store.fail_before.store(1, Ordering::SeqCst);
        repo.update(a.entity_id(), 3, |acc| acc.deposit(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(balance(&repo, a.entity_id()).await, 11);
        store.fail_before.store(1, Ordering::SeqCst);
        let policy = RetryPolicy::new().retry_storage_errors(false);
        let err = repo
            .update_with(a.entity_id(), &policy, |acc| acc.deposit(1))
            .await
            .unwrap_err();
        assert!(err.storage_kind() == Some(StorageErrorKind::Busy));
        assert_eq!(balance(&repo, a.entity_id()).await, 11);
    });
}

#[test]
fn update_gives_up_after_its_attempts() {
    rt().block_on(async {
        let store = Arc::new(FlakyStorage::default());
        let repo = Repository::<Account, _>::new(store.clone());
        let mut a = repo.create(open("alice")).unwrap();
        repo.commit(&mut a).await.unwrap();
        let before = store.commits.load(Ordering::SeqCst);
        store.fail_before.store(10, Ordering::SeqCst);
        let err = repo
            .update(a.entity_id(), 3, |acc| acc.deposit(1))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert_eq!(
            store.commits.load(Ordering::SeqCst) - before,
            3,
            "three attempts in all"
        );
    });
}

/// A store whose commits can be cancelled between steps: it yields to the runtime before and
/// after the inner commit, so a future dropped there leaves the outcome unknown to the caller.
struct Yielding<S>(S);

impl<S: Storage> Forward for Yielding<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.0
    }

    async fn commit(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
        tokio::task::yield_now().await;
        let outcome = self.0.commit(unit).await;
        tokio::task::yield_now().await;
        outcome
    }
}

/// Polls `future` `polls` times (or until it finishes) with a waker that does nothing, then
/// drops it: a cancellation at a point chosen by the test.
fn poll_then_drop<F: Future>(future: F, polls: usize) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// Cancels commits at random points, queues more events in between, and retries: the store ends
/// with exactly the entity's events, each once, versions gapless.
async fn cancelled_commits_lose_and_duplicate_nothing<S: Storage>(store: S, rounds: usize) {
    let repo = Repository::<Account, _>::new(store);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut a = repo.create(open("alice")).unwrap();
    let mut expected = 0;
    for _ in 0..rounds {
        let amount = 1 + next(9) as i64;
        a.deposit(amount).unwrap();
        expected += amount;
        let polls = next(4) as usize;
        match poll_then_drop(repo.commit(&mut a), polls) {
            Some(result) => {
                result.unwrap();
            }
            None => {
                // Cancelled: sometimes queue one more event before the retry.
                if next(2) == 0 {
                    a.deposit(1).unwrap();
                    expected += 1;
                }
            }
        }
        // Let a cancelled commit that still runs elsewhere finish.
        tokio::task::yield_now().await;
    }
    while a.has_uncommitted() {
        repo.commit(&mut a).await.unwrap();
    }
    let stored = repo
        .storage()
        .read_stream("account", a.entity_id(), ReadRange::ALL)
        .await
        .unwrap();
    let ids: Vec<_> = stored.iter().map(|e| e.event_id.clone()).collect();
    let mine: Vec<_> = a.events().map(|e| e.event_id().clone()).collect();
    assert_eq!(
        ids, mine,
        "the store holds exactly the entity's events, in order"
    );
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.version, i as u64 + 1, "versions are gapless");
    }
    assert_eq!(balance(&repo, a.entity_id()).await, expected);
}

#[test]
fn commits_cancelled_at_random_points_lose_and_duplicate_nothing_in_memory() {
    rt().block_on(cancelled_commits_lose_and_duplicate_nothing(
        Yielding(MemoryStorage::new()),
        300,
    ));
}

#[test]
fn commits_cancelled_at_random_points_lose_and_duplicate_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cancel.db");
    for flavor in ["current", "multi"] {
        let rt = match flavor {
            "current" => rt(),
            _ => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        };
        rt.block_on(async {
            let options = ventyd::storage::sqlite::SqliteOptions::new()
                .synchronous(ventyd::storage::sqlite::Synchronous::Normal);
            let store = SqliteStorage::open_with(&path, options).await.unwrap();
            cancelled_commits_lose_and_duplicate_nothing(Yielding(store), 150).await;
        });
    }
}

#[test]
fn any_storage_opens_stores_by_url() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("any.db");
        let urls = [
            "memory:".to_owned(),
            "sqlite::memory:".to_owned(),
            format!(
                "sqlite://{}?synchronous=normal&busy_timeout_ms=200",
                file.display()
            ),
            format!("sqlite:{}", file.display()),
        ];
        for url in &urls {
            let store = AnyStorage::open(url)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(store.label(), url);
            let repo = Repository::<Account, _>::new(store);
            let mut a = repo.create(open("alice")).unwrap();
            a.deposit(3).unwrap();
            repo.commit(&mut a).await.unwrap();
            assert_eq!(balance(&repo, a.entity_id()).await, 3, "{url}");
        }
        // The file URL really opened the file: both SQLite URLs above wrote to it.
        let file_store = SqliteStorage::open(&file).await.unwrap();
        let page = file_store
            .read_log(&ventyd::storage::LogRequest::new(
                ventyd::storage::LogCursor::START,
                100,
            ))
            .await
            .unwrap();
        assert_eq!(page.events().count(), 4);
    });
}

#[test]
fn bad_store_urls_are_clear_errors_and_create_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("never.db");
        let cases = [
            (
                "mysql://localhost/db".to_owned(),
                StorageErrorKind::InvalidRequest,
                "\"mysql\"",
            ),
            (
                "no-scheme".to_owned(),
                StorageErrorKind::InvalidRequest,
                "not a store URL",
            ),
            (
                "memory:extra".to_owned(),
                StorageErrorKind::InvalidRequest,
                "memory",
            ),
            (
                "sqlite://".to_owned(),
                StorageErrorKind::InvalidRequest,
                "names no file",
            ),
            (
                format!("sqlite://{}?journal=off", file.display()),
                StorageErrorKind::InvalidRequest,
                "unknown SQLite option \"journal\"",
            ),
            (
                format!("sqlite://{}?synchronous=sometimes", file.display()),
                StorageErrorKind::InvalidRequest,
                "synchronous",
            ),
            (
                "postgres://app:secret@localhost/db".to_owned(),
                StorageErrorKind::Unsupported,
                "app:***@localhost",
            ),
        ];
        for (url, kind, mention) in cases {
            let err = AnyStorage::open(&url).await.unwrap_err();
            assert_eq!(err.storage_kind(), Some(kind), "{url}: {err}");
            let message = err.to_string();
            assert!(
                message.contains(mention),
                "{url}: {message:?} should mention {mention:?}"
            );
            assert!(
                !message.contains("secret"),
                "a password is never printed: {message}"
            );
        }
        assert!(!file.exists(), "no bad URL created a file");
    });
}

/// A wrapper that overrides one call; every other call reaches the wrapped store unchanged.
struct CountCommits {
    inner: MemoryStorage,
    commits: AtomicUsize,
}

impl Forward for CountCommits {
    type Inner = MemoryStorage;

    fn inner(&self) -> &MemoryStorage {
        &self.inner
    }

    async fn commit(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(unit).await
    }
}

#[test]
fn a_wrapper_overrides_only_what_it_changes() {
    rt().block_on(async {
        let store = Arc::new(CountCommits {
            inner: MemoryStorage::new(),
            commits: AtomicUsize::new(0),
        });
        let repo = Repository::<Account, _>::new(store.clone());
        let mut a = repo.create(open("alice")).unwrap();
        repo.commit(&mut a).await.unwrap();
        a.deposit(1).unwrap();
        repo.commit(&mut a).await.unwrap();
        assert_eq!(store.commits.load(Ordering::SeqCst), 2);
        assert_eq!(store.inner.len(), 2);
        assert_eq!(
            balance(&repo, a.entity_id()).await,
            1,
            "reads are forwarded"
        );
        // And the wrapper works behind `AnyStorage` too.
        let any = AnyStorage::new(store.clone());
        let repo = Repository::<Account, _>::new(any);
        assert_eq!(balance(&repo, a.entity_id()).await, 1);
    });
}
