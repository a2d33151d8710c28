//! Aggregates: the state an entity folds its events into.

use crate::envelope::Envelope;
use crate::event::Event;

/// The state of an entity, tied to its event enum.
///
/// Derive it with `#[derive(Aggregate)]` and `#[aggregate(event = UserEvent)]`; the entity name
/// comes from the event enum. The folding itself is the [`Reducer`], written by hand so that the
/// compiler checks the `match` over the events for exhaustiveness.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "not an aggregate",
    note = "derive it: `#[derive(Aggregate)] #[aggregate(event = YourEvent)]`"
)]
pub trait Aggregate: Sized + Clone + Send + Sync + 'static {
    /// The event enum whose events this state folds.
    type Event: Event;
}

/// The pure reducer of an aggregate: Ventyd's `defineReducer`, split in two so that an entity
/// can only ever begin with its initial event.
///
/// ```
/// use ventyd::prelude::*;
///
/// #[event(entity = "counter")]
/// #[derive(Debug, Clone)]
/// pub enum CounterEvent {
///     #[event(initial)]
///     Opened { start: i64 },
///     Added { amount: i64 },
/// }
///
/// #[derive(Aggregate, Debug, Clone)]
/// #[aggregate(event = CounterEvent)]
/// pub struct Counter {
///     pub value: i64,
/// }
///
/// impl Reducer for Counter {
///     fn init(opened: &CounterOpened) -> Self {
///         Counter { value: opened.start }
///     }
///     fn apply(&mut self, event: &CounterEvent) {
///         match event {
///             // `init` handles the initial event; `apply` never sees it.
///             CounterEvent::Opened { .. } => {}
///             CounterEvent::Added { amount } => self.value += amount,
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no reducer",
    label = "`Reducer` is not implemented",
    note = "implement `ventyd::Reducer` for `{Self}`: `fn init(initial) -> Self` and `fn apply(&mut self, event)`"
)]
pub trait Reducer: Aggregate {
    /// Builds the first state from the initial event's body.
    fn init(initial: &<Self::Event as Event>::Initial) -> Self;

    /// Builds the first state from the initial event's body and its envelope (its id, creation
    /// time, metadata: "`created_at` is the time of the creation"). The default calls
    /// [`init`](Self::init); see [`apply_envelope`](Self::apply_envelope) for what an envelope
    /// holds before and after a commit.
    fn init_envelope(
        initial: &<Self::Event as Event>::Initial,
        envelope: &Envelope<Self::Event>,
    ) -> Self {
        let _ = envelope;
        Self::init(initial)
    }

    /// Folds one event into the state. Must not fail: every rule is checked before an event is
    /// dispatched, and stored events are facts.
    ///
    /// It is never called with the initial event, which [`init`](Self::init) alone handles:
    /// an entity cannot be created twice (a mutation that returns the initial event is refused,
    /// a stream with a second one does not load). Its arm in the `match` is there for the
    /// compiler's exhaustiveness check and does nothing: `UserEvent::Created { .. } => {}`.
    fn apply(&mut self, event: &Self::Event);

    /// Folds one event with its envelope: its id, creation time, version, position, commit
    /// time and metadata. Override it to keep any of them in the state ("`deleted_at` is the
    /// time of the deletion"); the default calls [`apply`](Self::apply), which an override
    /// usually calls too. ventyd folds every event through this method: dispatched, loaded,
    /// hydrated. An event just dispatched has no position, commit time or metadata yet (the
    /// store gives them at commit, and a loaded event has them): a state that keeps one of
    /// those differs between the entity that dispatched the event and one loaded later.
    ///
    /// ```
    /// use ventyd::prelude::*;
    /// use ventyd::{Envelope, Timestamp};
    ///
    /// #[event(entity = "user")]
    /// #[derive(Debug, Clone)]
    /// pub enum UserEvent {
    ///     #[event(initial)]
    ///     Created { email: String },
    ///     Deleted { reason: String },
    /// }
    ///
    /// #[derive(Aggregate, Debug, Clone)]
    /// #[aggregate(event = UserEvent)]
    /// pub struct User { pub deleted_at: Option<Timestamp> }
    ///
    /// impl Reducer for User {
    ///     fn init(_: &UserCreated) -> Self { User { deleted_at: None } }
    ///     fn apply(&mut self, _: &UserEvent) {}
    ///     fn apply_envelope(&mut self, envelope: &Envelope<UserEvent>) {
    ///         self.apply(envelope.event());
    ///         if let UserEvent::Deleted { .. } = envelope.event() {
    ///             self.deleted_at = Some(envelope.event_created_at());
    ///         }
    ///     }
    /// }
    /// ```
    fn apply_envelope(&mut self, envelope: &Envelope<Self::Event>) {
        self.apply(envelope.event());
    }
}

/// What a deciding mutation may return: one event, an optional event, or several.
#[diagnostic::on_unimplemented(
    message = "a mutation of this aggregate must return events of type `{E}`, not `{Self}`",
    label = "not an event of this aggregate",
    note = "return `{E}`, `Option<{E}>`, `Vec<{E}>` or an array of them, optionally inside `Result<_, YourError>`"
)]
pub trait IntoEvents<E> {
    /// The iterator over the events.
    type Iter: Iterator<Item = E>;

    /// The events, in the order they are dispatched.
    fn into_events(self) -> Self::Iter;
}

impl<E: Event> IntoEvents<E> for E {
    type Iter = std::iter::Once<E>;
    fn into_events(self) -> Self::Iter {
        std::iter::once(self)
    }
}

impl<E: Event> IntoEvents<E> for Option<E> {
    type Iter = std::option::IntoIter<E>;
    fn into_events(self) -> Self::Iter {
        self.into_iter()
    }
}

impl<E: Event> IntoEvents<E> for Vec<E> {
    type Iter = std::vec::IntoIter<E>;
    fn into_events(self) -> Self::Iter {
        self.into_iter()
    }
}

impl<E: Event, const N: usize> IntoEvents<E> for [E; N] {
    type Iter = std::array::IntoIter<E, N>;
    fn into_events(self) -> Self::Iter {
        self.into_iter()
    }
}
