//! Entities: an aggregate's state with its identity, version, history and queued events.

use std::fmt;
use std::sync::{Arc, LazyLock};

use crate::event_id::EventId;
use serde_json::Value;

use crate::aggregate::{IntoEvents, Reducer};
use crate::envelope::{Envelope, decode_error, decode_stored};
use crate::error::{DecodeError, DecodeReason, Error, ValidationError};
use crate::event::LoadValidation;
use crate::event::{Event, encode_body};
use crate::id::{IdGenerator, UuidV7};
use crate::record::{EventRef, EventVisitor};
use crate::storage::EventPlace;
use crate::time::{Clock, SystemClock, Timestamp};

/// The default limit of uncommitted events on one entity.
pub const DEFAULT_QUEUE_LIMIT: usize = 10_000;

/// What entities are made with: the clock, the id generator and the queue limit.
///
/// A [`Repository`](crate::Repository) hands its configuration to every entity it creates or
/// loads; [`Entity::create`] uses the default (system clock, UUID v7 ids, 10,000 events).
///
/// ```
/// use ventyd::{EntityConfig, FixedClock, SequentialIds, Timestamp};
///
/// let config = EntityConfig::default()
///     .with_clock(FixedClock::new(Timestamp::from_millis(0)))
///     .with_ids(SequentialIds::default())
///     .with_queue_limit(100);
/// assert_eq!(config.queue_limit(), 100);
/// ```
#[derive(Clone)]
pub struct EntityConfig {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    queue_limit: usize,
}

impl Default for EntityConfig {
    fn default() -> Self {
        EntityConfig {
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
            queue_limit: DEFAULT_QUEUE_LIMIT,
        }
    }
}

impl fmt::Debug for EntityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntityConfig")
            .field("queue_limit", &self.queue_limit)
            .finish_non_exhaustive()
    }
}

static DEFAULT_CONFIG: LazyLock<Arc<EntityConfig>> =
    LazyLock::new(|| Arc::new(EntityConfig::default()));

impl EntityConfig {
    /// Uses `clock` for event creation times.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses `ids` for new entity and event ids.
    pub fn with_ids(mut self, ids: impl IdGenerator) -> Self {
        self.ids = Arc::new(ids);
        self
    }

    /// Sets how many uncommitted events an entity may hold.
    pub fn with_queue_limit(mut self, limit: usize) -> Self {
        self.queue_limit = limit;
        self
    }

    /// The queue limit.
    pub fn queue_limit(&self) -> usize {
        self.queue_limit
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The id generator.
    pub fn ids(&self) -> &dyn IdGenerator {
        &*self.ids
    }
}

/// Options of [`Entity::create_with`]: Ventyd's `create({ body, entityId, eventId, eventCreatedAt })`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The entity id; generated when absent.
    pub entity_id: Option<String>,
    /// The initial event's id; generated when absent.
    pub event_id: Option<EventId>,
    /// The initial event's creation time; the clock's time when absent.
    pub event_created_at: Option<Timestamp>,
}

impl CreateOptions {
    /// Sets the entity id.
    pub fn entity_id(mut self, id: impl Into<String>) -> Self {
        self.entity_id = Some(id.into());
        self
    }

    /// Sets the initial event's id.
    pub fn event_id(mut self, id: impl Into<EventId>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Sets the initial event's creation time.
    pub fn event_created_at(mut self, at: Timestamp) -> Self {
        self.event_created_at = Some(at);
        self
    }
}

/// A queued event: its envelope and the body that was validated, ready to store.
#[derive(Debug, Clone)]
pub(crate) struct Queued<E> {
    pub(crate) envelope: Envelope<E>,
    /// The body as JSON text, encoded once when the event was dispatched (after it passed its
    /// schema), so that a commit only copies it.
    pub(crate) body: String,
}

/// An event-sourced entity: state, identity, version, history and the events not yet committed.
///
/// Its mutations are the methods of the trait that `#[mutations]` generates for the aggregate
/// (`UserMutations` for `User`). Each dispatched event is validated against its schema, applied
/// to the state at once and queued; a failed mutation leaves the entity exactly as it was.
/// [`Repository::commit`](crate::Repository::commit) stores the queue and clears it only once the
/// store has confirmed it.
pub struct Entity<A: Reducer> {
    id: Arc<str>,
    state: A,
    committed_version: u64,
    /// The committed events this entity knows: from version 1, or, for an entity restored from
    /// a state ([`Entity::load_mutable`]), those committed after it.
    history: Vec<Envelope<A::Event>>,
    queue: Vec<Queued<A::Event>>,
    config: Arc<EntityConfig>,
    /// For an entity restored from a state: that state, the base that the history folds onto
    /// when the queue is discarded.
    restored: Option<Arc<A>>,
}

impl<A: Reducer + fmt::Debug> fmt::Debug for Entity<A>
where
    A::Event: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entity")
            .field("entity_name", &self.entity_name())
            .field("entity_id", &&*self.id)
            .field("version", &self.version())
            .field("state", &self.state)
            .field("queued", &self.queue.len())
            .finish()
    }
}

impl<A: Reducer> Clone for Entity<A> {
    fn clone(&self) -> Self {
        Entity {
            id: self.id.clone(),
            state: self.state.clone(),
            committed_version: self.committed_version,
            history: self.history.clone(),
            queue: self.queue.clone(),
            config: self.config.clone(),
            restored: self.restored.clone(),
        }
    }
}

impl<A: Reducer> Entity<A> {
    /// Creates an entity from its initial event's body, with a new id.
    ///
    /// Only the initial event's body type is accepted, so creating an entity from any other
    /// event does not compile.
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
    /// let user = Entity::<User>::create(UserCreated { email: "a@example.com".into() })?;
    /// assert_eq!(user.version(), 1);
    /// assert_eq!(user.queued_events().len(), 1);
    /// # Ok::<(), ventyd::Error>(())
    /// ```
    pub fn create(initial: <A::Event as Event>::Initial) -> Result<Self, Error> {
        Self::create_shared(&DEFAULT_CONFIG, initial, CreateOptions::default())
    }

    /// Creates an entity with a chosen id, event id or creation time.
    pub fn create_with(
        initial: <A::Event as Event>::Initial,
        options: CreateOptions,
    ) -> Result<Self, Error> {
        Self::create_shared(&DEFAULT_CONFIG, initial, options)
    }

    /// Creates an entity made with `config` (its clock, id generator and queue limit), outside
    /// a repository.
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
    /// use ventyd::{CreateOptions, EntityConfig, FixedClock, SequentialIds, Timestamp};
    ///
    /// let config = EntityConfig::default()
    ///     .with_clock(FixedClock::new(Timestamp::from_millis(1_000)))
    ///     .with_ids(SequentialIds::default())
    ///     .with_queue_limit(50);
    /// let user = Entity::<User>::create_in(
    ///     &config,
    ///     UserCreated { email: "a@example.com".into() },
    ///     CreateOptions::default(),
    /// )?;
    /// assert_eq!(user.events().next().unwrap().event_created_at(), Timestamp::from_millis(1_000));
    /// # Ok::<(), ventyd::Error>(())
    /// ```
    pub fn create_in(
        config: &EntityConfig,
        initial: <A::Event as Event>::Initial,
        options: CreateOptions,
    ) -> Result<Self, Error> {
        Self::create_shared(&Arc::new(config.clone()), initial, options)
    }

    /// Rebuilds an entity from its events, as Ventyd's `hydrate`: each envelope is checked (it
    /// belongs to `entity_id`; versions run 1, 2, 3, ...; the first is the initial event and
    /// no other is; every body passes its schema) and folded. The events count as committed.
    /// An envelope without a version (a legacy Ventyd event read from JSON, version 0) takes
    /// its place in the list as its version.
    ///
    /// # Errors
    /// [`Error::Decode`] naming the entity, the version and the event that is wrong, and why
    /// ([`DecodeReason`]); nothing is built. An empty list is [`DecodeReason::NoEvents`].
    pub fn hydrate(
        entity_id: impl Into<String>,
        envelopes: impl IntoIterator<Item = Envelope<A::Event>>,
    ) -> Result<Self, Error> {
        Self::hydrate_shared(&DEFAULT_CONFIG, entity_id.into(), envelopes)
    }

    /// Like [`hydrate`](Self::hydrate), the entity made with `config`.
    pub fn hydrate_in(
        config: &EntityConfig,
        entity_id: impl Into<String>,
        envelopes: impl IntoIterator<Item = Envelope<A::Event>>,
    ) -> Result<Self, Error> {
        Self::hydrate_shared(&Arc::new(config.clone()), entity_id.into(), envelopes)
    }

    fn hydrate_shared(
        config: &Arc<EntityConfig>,
        entity_id: String,
        envelopes: impl IntoIterator<Item = Envelope<A::Event>>,
    ) -> Result<Self, Error> {
        let id: Arc<str> = Arc::from(entity_id);
        let mut state: Option<A> = None;
        let mut history: Vec<Envelope<A::Event>> = Vec::new();
        for mut envelope in envelopes {
            let expected = history.len() as u64 + 1;
            // A legacy Ventyd event has no version: its place in the stream gives it.
            if envelope.version == 0 {
                envelope.version = expected;
            }
            let name = envelope.event.event_name();
            let fail = |reason| {
                Error::from(DecodeError {
                    entity_name: <A::Event as Event>::ENTITY_NAME.to_owned(),
                    entity_id: id.to_string(),
                    version: envelope.version,
                    event_name: name.to_owned(),
                    reason,
                })
            };
            if *envelope.entity_id != *id {
                return Err(fail(DecodeReason::WrongStream));
            }
            if envelope.version != expected {
                return Err(fail(DecodeReason::VersionGap { expected }));
            }
            let body = encode_body(&envelope.event).map_err(|source| Error::Encode {
                event_name: name,
                source,
            })?;
            if let Some(schema) = <A::Event as Event>::schemas().get(envelope.event.variant_index())
            {
                schema
                    .judge(&body)?
                    .map_err(|violations| fail(DecodeReason::Schema(violations)))?;
            }
            match &mut state {
                None => {
                    if name != <A::Event as Event>::INITIAL_NAME {
                        return Err(fail(DecodeReason::NotInitial {
                            expected: <A::Event as Event>::INITIAL_NAME,
                        }));
                    }
                    let initial: <A::Event as Event>::Initial =
                        serde_json::from_value(body).map_err(|e| fail(DecodeReason::Body(e)))?;
                    state = Some(A::init_envelope(&initial, &envelope));
                }
                Some(state) => {
                    if name == <A::Event as Event>::INITIAL_NAME {
                        return Err(fail(DecodeReason::InitialAgain));
                    }
                    state.apply_envelope(&envelope);
                }
            }
            envelope.entity_id = id.clone();
            history.push(envelope);
        }
        let Some(state) = state else {
            return Err(no_events::<A::Event>(id.to_string()));
        };
        Ok(Entity {
            id,
            state,
            committed_version: history.len() as u64,
            history,
            queue: Vec::new(),
            config: config.clone(),
            restored: None,
        })
    }

    /// A mutable entity from a state known elsewhere at `version` (a snapshot, a migration):
    /// Ventyd's unsafe mutable load. Nothing checks that the state is what the stream's events
    /// fold to: that is the caller's promise. Its mutations queue events after `version`, and a
    /// commit expects the stream at `version`, so a wrong version fails as a conflict rather
    /// than overwriting anything. It has no history before `version`.
    ///
    /// # Errors
    /// [`DecodeReason::NoEvents`] for version 0: an entity has at least its initial event.
    pub fn load_mutable(
        entity_id: impl Into<String>,
        state: A,
        version: u64,
    ) -> Result<Self, Error> {
        Self::load_mutable_shared(&DEFAULT_CONFIG, entity_id.into(), state, version)
    }

    /// Like [`load_mutable`](Self::load_mutable), the entity made with `config`.
    pub fn load_mutable_in(
        config: &EntityConfig,
        entity_id: impl Into<String>,
        state: A,
        version: u64,
    ) -> Result<Self, Error> {
        Self::load_mutable_shared(&Arc::new(config.clone()), entity_id.into(), state, version)
    }

    fn load_mutable_shared(
        config: &Arc<EntityConfig>,
        entity_id: String,
        state: A,
        version: u64,
    ) -> Result<Self, Error> {
        if version == 0 {
            return Err(no_events::<A::Event>(entity_id));
        }
        Ok(Entity {
            id: Arc::from(entity_id),
            restored: Some(Arc::new(state.clone())),
            state,
            committed_version: version,
            history: Vec::new(),
            queue: Vec::new(),
            config: config.clone(),
        })
    }

    /// Drops the queued events and puts the state back to the committed one, which is folded
    /// again from the history (or from the state a [`load_mutable`](Self::load_mutable) entity
    /// was restored from). Returns the events dropped, oldest first.
    ///
    /// # Errors
    /// [`Error::NeverCommitted`] when the entity's creation is queued: discarding it would
    /// leave no entity (drop the entity instead); the entity is unchanged.
    pub fn discard_queued(&mut self) -> Result<Vec<Envelope<A::Event>>, Error> {
        if self.queue.is_empty() {
            return Ok(Vec::new());
        }
        if self.committed_version == 0 {
            return Err(Error::NeverCommitted {
                entity_name: <A::Event as Event>::ENTITY_NAME,
                entity_id: self.id.to_string(),
            });
        }
        let state = self.committed_state()?;
        self.state = state;
        Ok(std::mem::take(&mut self.queue)
            .into_iter()
            .map(|q| q.envelope)
            .collect())
    }

    /// The state folded from the committed events alone.
    fn committed_state(&self) -> Result<A, Error> {
        let (mut state, rest) = match &self.restored {
            Some(base) => (A::clone(base), &self.history[..]),
            None => {
                // Every way to a committed entity keeps its history from version 1 or the
                // state it was restored from; without either there is nothing to fold.
                let Some((first, rest)) = self.history.split_first() else {
                    return Err(no_events::<A::Event>(self.id.to_string()));
                };
                let name = first.event.event_name();
                let initial: <A::Event as Event>::Initial = encode_body(&first.event)
                    .and_then(serde_json::from_value)
                    .map_err(|source| Error::Encode {
                        event_name: name,
                        source,
                    })?;
                (A::init_envelope(&initial, first), rest)
            }
        };
        for envelope in rest {
            state.apply_envelope(envelope);
        }
        Ok(state)
    }

    pub(crate) fn create_shared(
        config: &Arc<EntityConfig>,
        initial: <A::Event as Event>::Initial,
        options: CreateOptions,
    ) -> Result<Self, Error> {
        let name = <A::Event as Event>::INITIAL_NAME;
        let id: Arc<str> = match options.entity_id {
            Some(id) => Arc::from(id),
            None => Arc::from(config.ids.entity_id()),
        };
        let body = serde_json::to_value(&initial).map_err(|source| Error::Encode {
            event_name: name,
            source,
        })?;
        validate::<A::Event>(name, &id, &body)?;
        // `init_envelope` takes the body and the envelope that holds the event made of it: the
        // body is read back from its JSON for that (once per entity created).
        let copy = <<A::Event as Event>::Initial as serde::Deserialize>::deserialize(&body)
            .map_err(|source| Error::Encode {
                event_name: name,
                source,
            })?;
        let envelope = Envelope {
            event_id: options.event_id.unwrap_or_else(|| config.ids.event_id()),
            event_created_at: options
                .event_created_at
                .unwrap_or_else(|| config.clock.now()),
            entity_id: id.clone(),
            version: 1,
            position: None,
            recorded_at: None,
            schema_version: 1,
            metadata: None,
            event: initial.into(),
        };
        let state = A::init_envelope(&copy, &envelope);
        Ok(Entity {
            id,
            state,
            committed_version: 0,
            history: Vec::new(),
            queue: vec![Queued {
                envelope,
                body: body.to_string(),
            }],
            config: config.clone(),
            restored: None,
        })
    }

    /// The entity id.
    pub fn entity_id(&self) -> &str {
        &self.id
    }

    /// The entity name (`"user"`).
    pub fn entity_name(&self) -> &'static str {
        <A::Event as Event>::ENTITY_NAME
    }

    /// The current state, with queued events applied.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The version including queued events.
    pub fn version(&self) -> u64 {
        self.committed_version + self.queue.len() as u64
    }

    /// The version the store has confirmed (0 for an entity never committed).
    pub fn committed_version(&self) -> u64 {
        self.committed_version
    }

    /// Every event of the entity, committed then queued, with envelopes.
    pub fn events(&self) -> impl ExactSizeIterator<Item = &Envelope<A::Event>> + '_ {
        let queued = self.queue.iter().map(|q| &q.envelope);
        EventsIter {
            history: self.history.iter(),
            queued,
        }
    }

    /// The events not committed yet.
    pub fn queued_events(&self) -> impl ExactSizeIterator<Item = &Envelope<A::Event>> + '_ {
        self.queue.iter().map(|q| &q.envelope)
    }

    /// `true` when there are events to commit.
    pub fn has_uncommitted(&self) -> bool {
        !self.queue.is_empty()
    }

    /// A read-only view of the entity: its state, version and events (committed and queued),
    /// without mutations and without a way to commit.
    pub fn into_readonly(self) -> ReadonlyEntity<A> {
        let version = self.version();
        let mut history = self.history;
        history.extend(self.queue.into_iter().map(|q| q.envelope));
        ReadonlyEntity {
            id: self.id,
            version,
            state: self.state,
            history,
        }
    }

    pub(crate) fn queue(&self) -> &[Queued<A::Event>] {
        &self.queue
    }

    /// The store confirmed the queue: move it to the history with positions and metadata.
    pub(crate) fn confirm(
        &mut self,
        places: &[EventPlace],
        metadata: Option<Arc<crate::metadata::Metadata>>,
    ) {
        let queue = std::mem::take(&mut self.queue);
        self.committed_version += queue.len() as u64;
        self.history.reserve(queue.len());
        for (q, place) in queue.into_iter().zip(places) {
            let mut envelope = q.envelope;
            envelope.position = Some(place.position);
            envelope.recorded_at = Some(place.recorded_at);
            envelope.metadata = metadata.clone();
            self.history.push(envelope);
        }
    }

    /// Validates an event and builds its queue entry at `version`, without touching the entity.
    fn prepare(&self, event: A::Event, version: u64) -> Result<Queued<A::Event>, Error> {
        let name = event.event_name();
        if name == <A::Event as Event>::INITIAL_NAME {
            return Err(Error::InitialAgain {
                entity_name: <A::Event as Event>::ENTITY_NAME,
                entity_id: self.id.to_string(),
                event_name: name,
            });
        }
        let body = encode_body(&event).map_err(|source| Error::Encode {
            event_name: name,
            source,
        })?;
        validate_index::<A::Event>(event.variant_index(), name, &self.id, &body)?;
        Ok(Queued {
            envelope: Envelope {
                event_id: self.config.ids.event_id(),
                event_created_at: self.config.clock.now(),
                entity_id: self.id.clone(),
                version,
                position: None,
                recorded_at: None,
                schema_version: 1,
                metadata: None,
                event,
            },
            body: body.to_string(),
        })
    }

    fn check_room(&self, more: usize) -> Result<(), Error> {
        if self.queue.len() + more > self.config.queue_limit {
            return Err(Error::QueueOverflow {
                entity_name: <A::Event as Event>::ENTITY_NAME,
                entity_id: self.id.to_string(),
                limit: self.config.queue_limit,
            });
        }
        Ok(())
    }

    fn push(&mut self, queued: Queued<A::Event>) {
        self.state.apply_envelope(&queued.envelope);
        self.queue.push(queued);
    }

    /// Dispatches the events a deciding mutation returned: every one is validated and the queue
    /// checked before the first is applied, so a failure changes nothing.
    pub(crate) fn decide<R: IntoEvents<A::Event>>(&mut self, events: R) -> Result<(), Error> {
        let mut iter = events.into_events();
        let (lower, _) = iter.size_hint();
        if lower <= 1 {
            // The common case, one event, needs no intermediate vector.
            let Some(first) = iter.next() else {
                return Ok(());
            };
            if let Some(second) = iter.next() {
                let all: Vec<_> = [first, second].into_iter().chain(iter).collect();
                return self.decide_many(all);
            }
            self.check_room(1)?;
            let queued = self.prepare(first, self.version() + 1)?;
            self.push(queued);
            return Ok(());
        }
        self.decide_many(iter.collect())
    }

    fn decide_many(&mut self, events: Vec<A::Event>) -> Result<(), Error> {
        self.check_room(events.len())?;
        let base = self.version();
        let prepared = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| self.prepare(e, base + i as u64 + 1))
            .collect::<Result<Vec<_>, _>>()?;
        for q in prepared {
            self.push(q);
        }
        Ok(())
    }
}

struct EventsIter<'a, E, Q> {
    history: std::slice::Iter<'a, Envelope<E>>,
    queued: Q,
}

impl<'a, E: 'a, Q: Iterator<Item = &'a Envelope<E>>> Iterator for EventsIter<'a, E, Q> {
    type Item = &'a Envelope<E>;
    fn next(&mut self) -> Option<Self::Item> {
        self.history.next().or_else(|| self.queued.next())
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let (q, _) = self.queued.size_hint();
        let n = self.history.len() + q;
        (n, Some(n))
    }
}

impl<'a, E: 'a, Q: ExactSizeIterator<Item = &'a Envelope<E>>> ExactSizeIterator
    for EventsIter<'a, E, Q>
{
}

/// An entity built from nothing (no events, or version 0): [`DecodeReason::NoEvents`].
fn no_events<E: Event>(entity_id: String) -> Error {
    DecodeError {
        entity_name: E::ENTITY_NAME.to_owned(),
        entity_id,
        version: 0,
        event_name: String::new(),
        reason: DecodeReason::NoEvents,
    }
    .into()
}

fn validate<E: Event>(name: &'static str, id: &str, body: &Value) -> Result<(), Error> {
    let index = E::name_index(name).unwrap_or(0);
    validate_index::<E>(index, name, id, body)
}

fn validate_index<E: Event>(
    index: usize,
    name: &'static str,
    id: &str,
    body: &Value,
) -> Result<(), Error> {
    let Some(schema) = E::schemas().get(index) else {
        return Ok(());
    };
    schema.judge(body)?.map_err(|violations| {
        Error::from(ValidationError {
            entity_name: E::ENTITY_NAME,
            entity_id: Some(id.to_owned()),
            event_name: name,
            violations,
        })
    })
}

/// Rebuilds an entity while the store reads its events: the [`EventVisitor`] a repository hands
/// to [`Storage::visit_stream`](crate::Storage::visit_stream). Each event is checked (its stream,
/// its version: 1, 2, 3, ...; the first must be the initial event), decoded, folded into the
/// state and kept in the history.
pub(crate) struct Loader<A: Reducer> {
    config: Arc<EntityConfig>,
    id: Arc<str>,
    validation: LoadValidation,
    state: Option<A>,
    history: Vec<Envelope<A::Event>>,
}

impl<A: Reducer> Loader<A> {
    pub(crate) fn new(
        config: &Arc<EntityConfig>,
        entity_id: &str,
        validation: LoadValidation,
    ) -> Self {
        Loader {
            config: config.clone(),
            id: Arc::from(entity_id),
            validation,
            state: None,
            history: Vec::new(),
        }
    }

    /// The entity as a read-only one, or `None` when the stream had no events.
    pub(crate) fn finish_readonly(self) -> Option<ReadonlyEntity<A>> {
        self.finish().map(Entity::into_readonly)
    }

    /// The entity, or `None` when the stream had no events.
    pub(crate) fn finish(self) -> Option<Entity<A>> {
        let state = self.state?;
        Some(Entity {
            id: self.id,
            state,
            committed_version: self.history.len() as u64,
            history: self.history,
            queue: Vec::new(),
            config: self.config,
            restored: None,
        })
    }
}

impl<A: Reducer> EventVisitor for Loader<A> {
    fn expect(&mut self, events: usize) {
        self.history.reserve(events);
    }

    fn visit(&mut self, e: EventRef<'_>) -> Result<(), Error> {
        if e.entity_id != &*self.id || e.entity_name != <A::Event as Event>::ENTITY_NAME {
            return Err(decode_error(&e, DecodeReason::WrongStream));
        }
        let expected = self.history.len() as u64 + 1;
        if e.version != expected {
            return Err(decode_error(&e, DecodeReason::VersionGap { expected }));
        }
        match &mut self.state {
            None => {
                if e.event_name != <A::Event as Event>::INITIAL_NAME {
                    return Err(decode_error(
                        &e,
                        DecodeReason::NotInitial {
                            expected: <A::Event as Event>::INITIAL_NAME,
                        },
                    ));
                }
                // The first event decodes as the initial body, which `init` takes, and as the
                // event its envelope holds.
                let ((initial, event), envelope) =
                    decode_stored::<A::Event, (<A::Event as Event>::Initial, A::Event)>(
                        &e,
                        &self.id,
                        self.validation,
                        |name, body| body.decode_initial(name),
                    )?;
                let envelope = envelope.with_event(event);
                self.state = Some(A::init_envelope(&initial, &envelope));
                self.history.push(envelope);
            }
            Some(state) => {
                if e.event_name == <A::Event as Event>::INITIAL_NAME {
                    return Err(decode_error(&e, DecodeReason::InitialAgain));
                }
                let (event, envelope) = decode_stored::<A::Event, A::Event>(
                    &e,
                    &self.id,
                    self.validation,
                    |name, body| body.decode_event(name),
                )?;
                let envelope = envelope.with_event(event);
                state.apply_envelope(&envelope);
                self.history.push(envelope);
            }
        }
        Ok(())
    }
}

/// The handle a dispatching mutation receives: Ventyd's `dispatch`.
///
/// Each [`dispatch`](Dispatch::dispatch) validates the event, applies it at once (so
/// [`state`](Dispatch::state) shows it to the checks that follow) and queues it. When the mutation
/// returns an error, everything it dispatched is undone.
pub struct Dispatch<'a, A: Reducer> {
    entity: &'a mut Entity<A>,
    saved: Option<A>,
}

impl<A: Reducer> Dispatch<'_, A> {
    /// The state, including the events dispatched so far.
    pub fn state(&self) -> &A {
        &self.entity.state
    }

    /// The entity id.
    pub fn entity_id(&self) -> &str {
        &self.entity.id
    }

    /// The version, including the events dispatched so far.
    pub fn version(&self) -> u64 {
        self.entity.version()
    }

    /// Validates, applies and queues one event.
    pub fn dispatch(&mut self, event: A::Event) -> Result<(), Error> {
        self.entity.check_room(1)?;
        let queued = self.entity.prepare(event, self.entity.version() + 1)?;
        if self.saved.is_none() {
            // The state is cloned once, at the first dispatch, so that a mutation failing after
            // it can be undone; a mutation that dispatches nothing costs nothing.
            self.saved = Some(self.entity.state.clone());
        }
        self.entity.push(queued);
        Ok(())
    }
}

/// Runs a dispatching mutation, undoing its events when it fails.
pub(crate) fn mutate<A: Reducer, T, E>(
    entity: &mut Entity<A>,
    f: impl FnOnce(&mut Dispatch<'_, A>) -> Result<T, E>,
) -> Result<T, E> {
    let queued = entity.queue.len();
    let mut dispatch = Dispatch {
        entity,
        saved: None,
    };
    let result = f(&mut dispatch);
    if result.is_err() {
        if let Some(saved) = dispatch.saved.take() {
            dispatch.entity.state = saved;
        }
        dispatch.entity.queue.truncate(queued);
    }
    result
}

/// A read-only entity: state, id, version and the events it was folded from, and no mutation
/// methods and no way to commit at all (Ventyd's `ReadonlyEntity`, from
/// `load({ entityId, state, version })`). For projections, snapshots, and time travel
/// ([`Repository::find_one_at`](crate::Repository::find_one_at)): a past version of an entity
/// must not be committed as if it were the present one.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadonlyEntity<A: Reducer> {
    id: Arc<str>,
    state: A,
    version: u64,
    history: Vec<Envelope<A::Event>>,
}

impl<A: Reducer> ReadonlyEntity<A> {
    /// A read-only entity from a state known elsewhere (a snapshot, a view); it has no events.
    pub fn load(entity_id: impl Into<String>, state: A, version: u64) -> Self {
        ReadonlyEntity {
            id: Arc::from(entity_id.into()),
            state,
            version,
            history: Vec::new(),
        }
    }

    /// The events the state was folded from, in version order: all of them for an entity
    /// loaded by time travel, none for one made with [`load`](Self::load).
    pub fn events(&self) -> impl ExactSizeIterator<Item = &Envelope<A::Event>> + '_ {
        self.history.iter()
    }

    /// The entity id.
    pub fn entity_id(&self) -> &str {
        &self.id
    }

    /// The entity name.
    pub fn entity_name(&self) -> &'static str {
        <A::Event as Event>::ENTITY_NAME
    }

    /// The state.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The state, by value.
    pub fn into_state(self) -> A {
        self.state
    }
}
