//! The repository: commits entities' queued events to a store and loads entities by replaying
//! their events.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::Reducer;
use crate::entity::{CreateOptions, Entity, EntityConfig, Loader, ReadonlyEntity};
use crate::error::{Error, StorageError};
use crate::event::Event;
use crate::event::LoadValidation;
use crate::metadata::Metadata;
use crate::storage::{
    AppendOutcome, AppendRequest, DocumentWrite, ExpectedRevision, ExpectedVersion, NewEvent,
    ReadRange, Storage, UnitOfWork,
};
use crate::time::Timestamp;

/// What a commit stored for one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// How many events were stored (0 when the entity had nothing queued).
    pub events: usize,
    /// The entity's version after the commit.
    pub version: u64,
    /// The global position of the last stored event, if any.
    pub last_position: Option<u64>,
    /// The store's commit time, when something was stored.
    pub recorded_at: Option<Timestamp>,
}

/// How [`Repository::update_with`] retries.
///
/// A **conflict** (another writer changed the entity first) is retried by loading the entity
/// again and running the change again on what is stored now. A **retryable storage error**
/// ([`Error::is_retryable`]: the store was busy or unavailable, or the outcome of the commit is
/// unknown) is retried by committing the same events again, without running the change again: a
/// commit whose outcome was lost may have been stored, and running the change again would apply
/// it twice (a deposit credited twice); the same events, committed again, are stored at most
/// once.
///
/// ```
/// use std::time::Duration;
/// use ventyd::RetryPolicy;
///
/// let policy = RetryPolicy::new().attempts(10).backoff(Duration::from_millis(1), Duration::from_millis(50));
/// assert_eq!(policy.get_attempts(), 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: usize,
    retry_storage_errors: bool,
    backoff: Option<(Duration, Duration)>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            retry_storage_errors: true,
            backoff: None,
        }
    }
}

impl RetryPolicy {
    /// Five attempts in all, retrying conflicts and retryable storage errors, without pauses.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many attempts in all (at least 1).
    pub fn attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Whether retryable storage errors are retried (default: yes); conflicts always are.
    pub fn retry_storage_errors(mut self, retry: bool) -> Self {
        self.retry_storage_errors = retry;
        self
    }

    /// Pause before each retry after the first: `initial`, doubling up to `max`, each pause
    /// drawn at random between half and all of it (so that contending writers spread out).
    /// Pauses use Tokio's timer: the runtime must have time enabled (`#[tokio::main]` does).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Some((initial, max.max(initial)));
        self
    }

    /// The number of attempts.
    pub fn get_attempts(&self) -> usize {
        self.attempts
    }

    /// The pause before retry number `retry` (1 = the first retry).
    fn pause(&self, retry: usize) -> Option<Duration> {
        let (initial, max) = self.backoff?;
        if retry < 2 {
            return None;
        }
        let factor = 1u32
            .checked_shl((retry - 2).min(20) as u32)
            .unwrap_or(u32::MAX);
        let full = initial.saturating_mul(factor).min(max);
        let half = full / 2;
        let spread = (full - half).as_nanos() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            crate::id::random_u64() % spread
        };
        Some(half + Duration::from_nanos(jitter))
    }
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
        Entity::create_shared(&self.config, initial, CreateOptions::default())
    }

    /// Creates an entity with a chosen id, event id or creation time.
    pub fn create_with(
        &self,
        initial: <A::Event as Event>::Initial,
        options: CreateOptions,
    ) -> Result<Entity<A>, Error> {
        Entity::create_shared(&self.config, initial, options)
    }

    /// Loads an entity by replaying its events; `None` when it has none.
    pub async fn find_one(&self, entity_id: &str) -> Result<Option<Entity<A>>, Error> {
        Ok(self.load(entity_id, ReadRange::ALL).await?.finish())
    }

    /// Time travel: the entity as it was at `version` (its first `version` events), read-only:
    /// a past version has no mutations and cannot be committed. `None` when the stream has no
    /// events or `version` is 0; a `version` past the end gives the entity as it is now.
    pub async fn find_one_at(
        &self,
        entity_id: &str,
        version: u64,
    ) -> Result<Option<ReadonlyEntity<A>>, Error> {
        Ok(self
            .load(entity_id, ReadRange::up_to(version))
            .await?
            .finish_readonly())
    }

    async fn load(&self, entity_id: &str, range: ReadRange) -> Result<Loader<A>, Error> {
        let loader = Loader::new(&self.config, entity_id, self.validation);
        self.storage
            .visit_stream(<A::Event as Event>::ENTITY_NAME, entity_id, range, loader)
            .await
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
                recorded_at: None,
            });
        }
        let events = new_events(entity, &metadata);
        let outcome = self
            .storage
            .append(AppendRequest::new(
                <A::Event as Event>::ENTITY_NAME,
                entity.entity_id(),
                ExpectedVersion::after(entity.committed_version()),
                &events,
            ))
            .await?;
        confirm(entity, &events, &outcome, metadata)
    }

    /// A batch of entities (of this or of any other aggregate type) and documents to commit
    /// atomically to this repository's store: see [`Batch`].
    pub fn batch(&self) -> Batch<'_, S> {
        Batch::new(&self.storage)
    }

    /// Load, change, commit; on a conflict, reload and run `change` again, up to `attempts`
    /// times in all; a retryable storage error commits the same events again. Returns `None`
    /// when the entity does not exist. See [`RetryPolicy`] and
    /// [`update_with`](Self::update_with).
    ///
    /// `change` runs on a freshly loaded entity each time, so it must decide from the entity's
    /// state, not from values captured before the first attempt.
    pub async fn update<T, E>(
        &self,
        entity_id: &str,
        attempts: usize,
        change: impl FnMut(&mut Entity<A>) -> Result<T, E>,
    ) -> Result<Option<T>, E>
    where
        E: From<Error>,
    {
        self.update_with(entity_id, &RetryPolicy::new().attempts(attempts), change)
            .await
    }

    /// Like [`update`](Self::update), retrying as `policy` says.
    pub async fn update_with<T, E>(
        &self,
        entity_id: &str,
        policy: &RetryPolicy,
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
            // Retry the same events while the store says a repeat is safe.
            let result = loop {
                match self.commit(&mut entity).await {
                    Err(e)
                        if e.is_retryable()
                            && policy.retry_storage_errors
                            && attempt < policy.attempts =>
                    {
                        attempt += 1;
                        pause(policy, attempt - 1).await;
                    }
                    other => break other,
                }
            };
            match result {
                Ok(_) => return Ok(Some(value)),
                Err(e) if e.is_conflict() && attempt < policy.attempts => {
                    pause(policy, attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

async fn pause(policy: &RetryPolicy, retry: usize) {
    if let Some(d) = policy.pause(retry) {
        tokio::time::sleep(d).await;
    }
}

/// The entity's queued events as the store takes them.
fn new_events<A: Reducer>(entity: &Entity<A>, metadata: &Option<Arc<Metadata>>) -> Vec<NewEvent> {
    entity
        .queue()
        .iter()
        .map(|q| NewEvent {
            event_id: q.envelope.event_id.clone(),
            event_name: Cow::Borrowed(q.envelope.event.event_name()),
            schema_version: q.envelope.schema_version,
            event_created_at: q.envelope.event_created_at,
            metadata: metadata.clone(),
            body: q.body.clone(),
            // The body was checked against this schema when it was dispatched.
            checked_schema: <A::Event as Event>::schemas()
                .get(q.envelope.event.variant_index())
                .map(|s| s.fingerprint()),
        })
        .collect()
}

/// Moves the entity's queue to its history once the store confirmed `outcome` for `events`.
fn confirm<A: Reducer>(
    entity: &mut Entity<A>,
    events: &[NewEvent],
    outcome: &AppendOutcome,
    metadata: Option<Arc<Metadata>>,
) -> Result<Committed, Error> {
    if outcome.events.len() != events.len() || outcome.version != entity.version() {
        return Err(StorageError::msg(format!(
            "the store confirmed {} events at version {} for {} {:?}, but {} were sent for version {}",
            outcome.events.len(),
            outcome.version,
            entity.entity_name(),
            entity.entity_id(),
            events.len(),
            entity.version()
        ))
        .into());
    }
    entity.confirm(&outcome.events, metadata);
    Ok(Committed {
        events: events.len(),
        version: outcome.version,
        last_position: outcome.events.last().map(|e| e.position),
        recorded_at: outcome.events.last().map(|e| e.recorded_at),
    })
}

/// One entity of a [`Batch`], with its type forgotten.
trait Pending: Send {
    fn entity_name(&self) -> &'static str;
    fn entity_id(&self) -> &str;
    fn expected(&self) -> ExpectedVersion;
    fn events(&self, metadata: &Option<Arc<Metadata>>) -> Vec<NewEvent>;
    fn confirm(
        &mut self,
        events: &[NewEvent],
        outcome: &AppendOutcome,
        metadata: Option<Arc<Metadata>>,
    ) -> Result<Committed, Error>;
}

impl<A: Reducer> Pending for &mut Entity<A> {
    fn entity_name(&self) -> &'static str {
        <A::Event as Event>::ENTITY_NAME
    }

    fn entity_id(&self) -> &str {
        Entity::entity_id(self)
    }

    fn expected(&self) -> ExpectedVersion {
        ExpectedVersion::after(self.committed_version())
    }

    fn events(&self, metadata: &Option<Arc<Metadata>>) -> Vec<NewEvent> {
        new_events(self, metadata)
    }

    fn confirm(
        &mut self,
        events: &[NewEvent],
        outcome: &AppendOutcome,
        metadata: Option<Arc<Metadata>>,
    ) -> Result<Committed, Error> {
        confirm(self, events, outcome, metadata)
    }
}

/// A document write a [`Batch`] owns until it commits.
#[derive(Debug, Clone)]
struct OwnedDocument {
    collection: String,
    key: String,
    expected: ExpectedRevision,
    body: Option<String>,
}

/// Several entities, of one or of several aggregate types, and document writes, committed in one
/// unit of work: all of them or none (the classic ask: a transfer that debits one account and
/// credits another). Each entity is checked at its own committed version; an entity with
/// nothing queued is checked too (its version must still be current), which makes a decision
/// that read it safe.
///
/// The guarantees of [`Repository::commit`] hold for the whole batch: the entities' queues are
/// cleared only after the store confirmed the unit, so on any error every entity is unchanged
/// and the batch can be built and committed again; a retry of a batch whose outcome was lost
/// stores nothing twice.
///
/// ```
/// # use ventyd::prelude::*;
/// # #[event(entity = "account")]
/// # #[derive(Debug, Clone)]
/// # pub enum AccountEvent { #[event(initial)] Opened { balance: i64 }, Moved { amount: i64 } }
/// # #[derive(Aggregate, Debug, Clone)]
/// # #[aggregate(event = AccountEvent)]
/// # pub struct Account { balance: i64 }
/// # impl Reducer for Account {
/// #     fn init(o: &AccountOpened) -> Self { Account { balance: o.balance } }
/// #     fn apply(&mut self, e: &AccountEvent) {
/// #         if let AccountEvent::Moved { amount } = e { self.balance += amount }
/// #     }
/// # }
/// # #[mutations]
/// # impl Account {
/// #     #[mutation]
/// #     pub fn transfer(&self, amount: i64) -> Result<AccountEvent, ventyd::Error> {
/// #         Ok(AccountEvent::Moved { amount })
/// #     }
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let repo = Repository::<Account, _>::new(MemoryStorage::new());
/// let mut from = repo.create(AccountOpened { balance: 100 })?;
/// let mut to = repo.create(AccountOpened { balance: 0 })?;
/// repo.batch().entity(&mut from).entity(&mut to).commit().await?;
///
/// from.transfer(-30)?;
/// to.transfer(30)?;
/// let done = repo.batch().entity(&mut from).entity(&mut to).commit().await?;
/// assert_eq!(done.entities[0].version, 2);
/// assert_eq!(repo.find_one(to.entity_id()).await?.unwrap().state().balance, 30);
/// # Ok::<(), ventyd::Error>(())
/// # }).unwrap();
/// ```
pub struct Batch<'a, S> {
    storage: &'a S,
    entities: Vec<Box<dyn Pending + 'a>>,
    documents: Vec<OwnedDocument>,
    metadata: Option<Arc<Metadata>>,
}

impl<S> fmt::Debug for Batch<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field(
                "entities",
                &self
                    .entities
                    .iter()
                    .map(|e| format!("{} {:?}", e.entity_name(), e.entity_id()))
                    .collect::<Vec<_>>(),
            )
            .field("documents", &self.documents)
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// What a [`Batch`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchCommitted {
    /// The store's commit time.
    pub recorded_at: Timestamp,
    /// One outcome per entity, in the order they were added.
    pub entities: Vec<Committed>,
    /// One revision per document write, in the order they were added (`None`: deleted).
    pub documents: Vec<Option<u64>>,
}

impl<'a, S: Storage> Batch<'a, S> {
    /// An empty batch on `storage`.
    pub fn new(storage: &'a S) -> Self {
        Batch {
            storage,
            entities: Vec::new(),
            documents: Vec::new(),
            metadata: None,
        }
    }

    /// Adds an entity, of any aggregate type.
    pub fn entity<A: Reducer>(mut self, entity: &'a mut Entity<A>) -> Self {
        self.add(entity);
        self
    }

    /// Adds an entity, in place.
    pub fn add<A: Reducer>(&mut self, entity: &'a mut Entity<A>) -> &mut Self {
        self.entities.push(Box::new(entity));
        self
    }

    /// Adds a document write: `body` (JSON text) under `collection`/`key`, if the document is at
    /// `expected`.
    pub fn put_document(
        mut self,
        collection: impl Into<String>,
        key: impl Into<String>,
        expected: ExpectedRevision,
        body: impl Into<String>,
    ) -> Self {
        self.documents.push(OwnedDocument {
            collection: collection.into(),
            key: key.into(),
            expected,
            body: Some(body.into()),
        });
        self
    }

    /// Adds a document delete, if the document is at `expected`.
    pub fn delete_document(
        mut self,
        collection: impl Into<String>,
        key: impl Into<String>,
        expected: ExpectedRevision,
    ) -> Self {
        self.documents.push(OwnedDocument {
            collection: collection.into(),
            key: key.into(),
            expected,
            body: None,
        });
        self
    }

    /// Records who did it and why on every event of the batch.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = (!metadata.is_empty()).then(|| Arc::new(metadata));
        self
    }

    /// Commits everything in one unit of work. On any error nothing is stored and every entity
    /// is unchanged.
    pub async fn commit(mut self) -> Result<BatchCommitted, Error> {
        let events: Vec<Vec<NewEvent>> = self
            .entities
            .iter()
            .map(|e| e.events(&self.metadata))
            .collect();
        let mut unit = UnitOfWork::new();
        for (entity, events) in self.entities.iter().zip(&events) {
            unit.push_append(AppendRequest::new(
                entity.entity_name(),
                entity.entity_id(),
                entity.expected(),
                events,
            ));
        }
        for d in &self.documents {
            unit.push_document(match &d.body {
                Some(body) => DocumentWrite::put(&d.collection, &d.key, d.expected, body),
                None => DocumentWrite::delete(&d.collection, &d.key, d.expected),
            });
        }
        let outcome = self.storage.commit(&unit).await?;
        drop(unit);
        if outcome.appends.len() != self.entities.len() {
            return Err(StorageError::msg(format!(
                "the store confirmed {} appends for a batch of {} entities",
                outcome.appends.len(),
                self.entities.len()
            ))
            .into());
        }
        let mut entities = Vec::with_capacity(self.entities.len());
        for ((entity, events), appended) in
            self.entities.iter_mut().zip(&events).zip(&outcome.appends)
        {
            entities.push(entity.confirm(events, appended, self.metadata.clone())?);
        }
        Ok(BatchCommitted {
            recorded_at: outcome.recorded_at,
            entities,
            documents: outcome.documents,
        })
    }
}
