//! The repository: commits entities' queued events to a store and loads entities by replaying
//! their events.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::aggregate::Reducer;
use crate::entity::{CreateOptions, Entity, EntityConfig, Loader};
use crate::envelope::Metadata;
use crate::error::{Error, StorageError};
use crate::event::Event;
use crate::storage::{AppendRequest, ExpectedVersion, NewEvent, ReadRange, Storage};

/// Which loaded event bodies a repository checks against their JSON Schemas.
///
/// Every body is checked before it is stored, and the store keeps the fingerprint of the schema it
/// passed ([`StoredEvent::checked_schema`](crate::storage::StoredEvent::checked_schema)). On load,
/// a body is decoded strictly into its Rust type in every mode; the modes differ in which bodies are
/// also checked against the schema's further rules (lengths, ranges, formats, patterns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadValidation {
    /// Check the bodies that carry no record of a check against the current schema: those written
    /// by another program (a TypeScript Ventyd service, a migration script), by a build with
    /// another schema, or by hand. Bodies written through a repository with the same schema are
    /// not checked twice, so loading costs what decoding costs. The default.
    #[default]
    Unverified,
    /// Check every body, whatever its record says (for example after editing rows by hand).
    Always,
    /// Check no body: trust the store.
    Never,
}

/// What a commit stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// How many events were stored (0 when the entity had nothing queued).
    pub events: usize,
    /// The entity's version after the commit.
    pub version: u64,
    /// The global position of the last stored event, if any.
    pub last_position: Option<u64>,
}

/// Commits and loads the entities of one aggregate type (Ventyd's `createRepository`).
///
/// ```
/// # use ventyd::prelude::*;
/// # #[event(entity = "user")]
/// # #[derive(Debug, Clone)]
/// # pub enum UserEvent { #[event(initial)] Created { email: String } }
/// # #[derive(Aggregate, Debug, Clone)]
/// # #[aggregate(event = UserEvent)]
/// # pub struct User { email: String }
/// # impl Reducer for User {
/// #     fn init(c: &UserCreated) -> Self { User { email: c.email.clone() } }
/// #     fn apply(&mut self, _: &UserEvent) {}
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let repo = Repository::<User, _>::new(MemoryStorage::new());
/// let mut user = repo.create(UserCreated { email: "a@example.com".into() })?;
/// repo.commit(&mut user).await?;
///
/// let loaded = repo.find_one(user.entity_id()).await?.expect("committed");
/// assert_eq!(loaded.state().email, "a@example.com");
/// assert_eq!(loaded.version(), 1);
/// # Ok::<(), ventyd::Error>(())
/// # }).unwrap();
/// ```
pub struct Repository<A, S> {
    storage: S,
    config: Arc<EntityConfig>,
    validation: LoadValidation,
    _aggregate: PhantomData<fn() -> A>,
}

/// Clones share the store (when the store's clones do, as `SqliteStorage`'s and `Arc<S>`'s do)
/// and the entity configuration: hand one to each task.
impl<A, S: Clone> Clone for Repository<A, S> {
    fn clone(&self) -> Self {
        Repository {
            storage: self.storage.clone(),
            config: self.config.clone(),
            validation: self.validation,
            _aggregate: PhantomData,
        }
    }
}

impl<A, S: fmt::Debug> fmt::Debug for Repository<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("storage", &self.storage)
            .field("config", &self.config)
            .field("validation", &self.validation)
            .finish()
    }
}

impl<A: Reducer, S: Storage> Repository<A, S> {
    /// A repository over `storage` with the default entity configuration.
    pub fn new(storage: S) -> Self {
        Self::with_config(storage, EntityConfig::default())
    }

    /// A repository whose entities use `config` (clock, ids, queue limit).
    pub fn with_config(storage: S, config: EntityConfig) -> Self {
        Repository {
            storage,
            config: Arc::new(config),
            validation: LoadValidation::default(),
            _aggregate: PhantomData,
        }
    }

    /// Which loaded bodies are checked against their schemas (default:
    /// [`LoadValidation::Unverified`]).
    pub fn load_validation(mut self, validation: LoadValidation) -> Self {
        self.validation = validation;
        self
    }

    /// The store.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Gives the store back.
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// The entity configuration.
    pub fn config(&self) -> &EntityConfig {
        &self.config
    }

    /// Creates an entity with this repository's clock and ids (not stored until committed).
    pub fn create(&self, initial: <A::Event as Event>::Initial) -> Result<Entity<A>, Error> {
        Entity::create_in(&self.config, initial, CreateOptions::default())
    }

    /// Creates an entity with a chosen id, event id or creation time.
    pub fn create_with(
        &self,
        initial: <A::Event as Event>::Initial,
        options: CreateOptions,
    ) -> Result<Entity<A>, Error> {
        Entity::create_in(&self.config, initial, options)
    }

    /// Loads an entity by replaying its events; `None` when it has none.
    pub async fn find_one(&self, entity_id: &str) -> Result<Option<Entity<A>>, Error> {
        self.load(entity_id, ReadRange::ALL).await
    }

    /// Time travel: the entity as it was at `version` (its first `version` events).
    pub async fn find_one_at(
        &self,
        entity_id: &str,
        version: u64,
    ) -> Result<Option<Entity<A>>, Error> {
        self.load(entity_id, ReadRange::up_to(version)).await
    }

    async fn load(&self, entity_id: &str, range: ReadRange) -> Result<Option<Entity<A>>, Error> {
        let loader = Loader::new(&self.config, entity_id, self.validation);
        let loader = self
            .storage
            .visit_stream(<A::Event as Event>::ENTITY_NAME, entity_id, range, loader)
            .await?;
        Ok(loader.finish())
    }

    /// Stores the entity's queued events atomically, expecting the stream at the entity's
    /// committed version, and clears the queue only once the store has confirmed them.
    ///
    /// On any error the entity is unchanged, so the commit can be retried; a retry of a commit
    /// whose outcome was lost stores nothing twice (the event ids are already there).
    pub async fn commit(&self, entity: &mut Entity<A>) -> Result<Committed, Error> {
        self.commit_inner(entity, None).await
    }

    /// Like [`commit`](Self::commit), recording who did it and why on every event.
    pub async fn commit_with(
        &self,
        entity: &mut Entity<A>,
        metadata: Metadata,
    ) -> Result<Committed, Error> {
        let metadata = (!metadata.is_empty()).then(|| Arc::new(metadata));
        self.commit_inner(entity, metadata).await
    }

    async fn commit_inner(
        &self,
        entity: &mut Entity<A>,
        metadata: Option<Arc<Metadata>>,
    ) -> Result<Committed, Error> {
        if !entity.has_uncommitted() {
            return Ok(Committed {
                events: 0,
                version: entity.version(),
                last_position: None,
            });
        }
        let events: Vec<NewEvent> = entity
            .queue()
            .iter()
            .map(|q| NewEvent {
                event_id: q.envelope.event_id,
                event_name: Cow::Borrowed(q.envelope.event.event_name()),
                schema_version: q.envelope.schema_version,
                event_created_at: q.envelope.event_created_at,
                metadata: metadata.clone(),
                body: q.body.to_string(),
                // The body was checked against this schema when it was dispatched.
                checked_schema: <A::Event as Event>::schemas()
                    .get(q.envelope.event.variant_index())
                    .map(|s| s.fingerprint()),
            })
            .collect();
        let outcome = self
            .storage
            .append(AppendRequest::new(
                <A::Event as Event>::ENTITY_NAME,
                entity.entity_id(),
                ExpectedVersion::after(entity.committed_version()),
                &events,
            ))
            .await?;
        if outcome.positions.len() != events.len() || outcome.version != entity.version() {
            return Err(StorageError::msg(format!(
                "the store confirmed {} events at version {} for {} {:?}, but {} were sent for version {}",
                outcome.positions.len(),
                outcome.version,
                entity.entity_name(),
                entity.entity_id(),
                events.len(),
                entity.version()
            ))
            .into());
        }
        entity.confirm(&outcome.positions, metadata);
        Ok(Committed {
            events: events.len(),
            version: outcome.version,
            last_position: outcome.positions.last().copied(),
        })
    }

    /// Load, change, commit; on a concurrency conflict, reload and run `change` again, up to
    /// `attempts` times in all. Returns `None` when the entity does not exist.
    ///
    /// `change` runs on a freshly loaded entity each time, so it must decide from the entity's
    /// state, not from values captured before the first attempt.
    pub async fn update<T, E>(
        &self,
        entity_id: &str,
        attempts: usize,
        mut change: impl FnMut(&mut Entity<A>) -> Result<T, E>,
    ) -> Result<Option<T>, E>
    where
        E: From<Error>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(mut entity) = self.find_one(entity_id).await? else {
                return Ok(None);
            };
            let value = change(&mut entity)?;
            match self.commit(&mut entity).await {
                Ok(_) => return Ok(Some(value)),
                Err(e) if e.is_concurrency() && attempt < attempts.max(1) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
