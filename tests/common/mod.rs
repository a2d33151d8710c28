//! The test domain shared by the integration tests: users, as in the quickstart, plus a
//! dispatching mutation and a store that fails on demand.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use ventyd::prelude::*;
use ventyd::storage::{AppendOutcome, AppendRequest, ReadRange, Snapshot, StoredEvent};
use ventyd::{Error, StorageError};

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
            UserEvent::Created { email, name } => {
                self.email = email.clone();
                self.name = name.clone();
            }
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
    #[error(transparent)]
    Ventyd(#[from] Error),
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
    ) -> Result<usize, UserError> {
        for tag in tags {
            if d.state().tags.len() >= max {
                return Err(UserError::TooManyTags);
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

/// A store that wraps the memory store and fails appends on demand, either before storing
/// (a clean failure) or after storing (an ambiguous one: the outcome is lost).
#[derive(Default)]
pub struct FlakyStorage {
    pub inner: MemoryStorage,
    pub fail_before: AtomicUsize,
    pub fail_after: AtomicUsize,
}

fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl Storage for FlakyStorage {
    async fn append(&self, request: AppendRequest<'_>) -> Result<AppendOutcome, Error> {
        if take(&self.fail_before) {
            return Err(StorageError::msg("injected failure before the append").into());
        }
        let outcome = self.inner.append(request).await?;
        if take(&self.fail_after) {
            return Err(StorageError::msg("injected failure after the append").into());
        }
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
    ) -> Result<Vec<std::sync::Arc<StoredEvent>>, Error> {
        self.inner.read_stream(entity_name, entity_id, range).await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<std::sync::Arc<StoredEvent>>, Error> {
        self.inner.read_all(from_position, limit).await
    }

    async fn read_snapshot(
        &self,
        entity_name: &str,
        entity_id: &str,
    ) -> Result<Option<Snapshot>, Error> {
        self.inner.read_snapshot(entity_name, entity_id).await
    }

    async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<(), Error> {
        self.inner.write_snapshot(snapshot).await
    }
}
