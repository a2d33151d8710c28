//! The test domain shared by the integration tests: users, as in the quickstart, plus a
//! dispatching mutation and a store that fails on demand.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use ventyd::prelude::*;
use ventyd::storage::{CommitOutcome, Forward, UnitOfWork};
use ventyd::{Error, StorageError, StorageErrorKind};

#[event(entity = "user")]
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    #[event(initial)]
    Created {
        #[schemars(email)]
        email: String,
        name: Option<String>,
    },
    NameUpdated {
        #[schemars(length(min = 1, max = 100))]
        name: String,
    },
    #[event(rename = "removed")]
    Deleted { reason: String },
    Tagged {
        #[schemars(length(min = 1, max = 3))]
        tag: String,
    },
}

#[derive(Aggregate, Debug, Clone, PartialEq)]
#[aggregate(event = UserEvent)]
pub struct User {
    pub email: String,
    pub name: Option<String>,
    pub deleted: bool,
    pub tags: Vec<String>,
}

impl Reducer for User {
    fn init(c: &UserCreated) -> Self {
        User {
            email: c.email.clone(),
            name: c.name.clone(),
            deleted: false,
            tags: Vec::new(),
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            // Every test runs this reducer: ventyd must never hand it the initial event, which
            // `init` alone handles.
            UserEvent::Created { .. } => unreachable!("apply was given the initial event"),
            UserEvent::NameUpdated { name } => self.name = Some(name.clone()),
            UserEvent::Deleted { .. } => self.deleted = true,
            UserEvent::Tagged { tag } => self.tags.push(tag.clone()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user is deleted")]
    Deleted,
    #[error("too many tags")]
    TooManyTags,
}

#[mutations]
impl User {
    /// Renames the user.
    #[mutation]
    pub fn update_name(&self, name: String) -> Result<UserEvent, UserError> {
        if self.deleted {
            return Err(UserError::Deleted);
        }
        Ok(UserEvent::NameUpdated { name })
    }

    /// Deletes the user.
    #[mutation]
    pub fn delete(&self, reason: String) -> UserEvent {
        UserEvent::Deleted { reason }
    }

    /// Tags the user several times at once; all tags are validated before any is applied.
    #[mutation]
    pub fn tag_all(&self, tags: Vec<String>) -> Vec<UserEvent> {
        tags.into_iter()
            .map(|tag| UserEvent::Tagged { tag })
            .collect()
    }

    /// Adds tags one by one, checking the limit against the state each dispatch produced.
    #[mutation]
    pub fn add_tags(
        d: &mut Dispatch<Self>,
        tags: Vec<String>,
        max: usize,
    ) -> Result<usize, MutationError<UserError>> {
        for tag in tags {
            if d.state().tags.len() >= max {
                return Err(MutationError::Rejected(UserError::TooManyTags));
            }
            d.dispatch(UserEvent::Tagged { tag })?;
        }
        Ok(d.state().tags.len())
    }
}

pub fn alice() -> UserCreated {
    UserCreated {
        email: "alice@example.com".into(),
        name: None,
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A store that wraps the memory store and fails commits on demand, either before storing
/// (a clean failure, a busy store) or after storing (an ambiguous one: the outcome is lost). A
/// [`Forward`] wrapper: only `commit` is written out, every read goes to the memory store.
#[derive(Default)]
pub struct FlakyStorage {
    pub inner: MemoryStorage,
    pub fail_before: AtomicUsize,
    pub fail_after: AtomicUsize,
    pub commits: AtomicUsize,
}

fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl Forward for FlakyStorage {
    type Inner = MemoryStorage;

    fn inner(&self) -> &MemoryStorage {
        &self.inner
    }

    async fn commit(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        if take(&self.fail_before) {
            return Err(StorageError::new(
                StorageErrorKind::Busy,
                "injected failure before the commit",
            )
            .into());
        }
        let outcome = self.inner.commit(unit).await?;
        if take(&self.fail_after) {
            return Err(StorageError::new(
                StorageErrorKind::OutcomeUnknown,
                "injected failure after the commit: its outcome is lost",
            )
            .into());
        }
        Ok(outcome)
    }
}
