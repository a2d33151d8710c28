//! Items the generated code names. Not public API: no stability guarantees.

pub use schemars;
pub use serde;
pub use serde_json;
pub use std::sync::OnceLock;

use crate::aggregate::{IntoEvents, Reducer};
use crate::entity::{Dispatch, Entity};
use crate::error::Error;

/// The seal on [`Event`](crate::Event): implemented by `#[ventyd::event]` beside `Event`, so
/// that the wire format, the name table and the schemas always come from one enum.
#[diagnostic::on_unimplemented(
    message = "`{Self}` implements `Event` by hand",
    label = "not an `#[event]` enum",
    note = "`Event` is implemented by `#[ventyd::event(entity = \"...\")]` on the enum, not by hand"
)]
pub trait EventSealed {}

/// Dispatches what a deciding mutation (`&self -> events`) returned.
#[inline]
pub fn decide<A: Reducer, R: IntoEvents<A::Event>>(
    entity: &mut Entity<A>,
    events: R,
) -> Result<(), Error> {
    entity.decide(events)
}

/// Runs a dispatching mutation (`&mut Dispatch<Self>`), undoing it when it fails.
#[inline]
pub fn mutate<A: Reducer, T, E>(
    entity: &mut Entity<A>,
    f: impl FnOnce(&mut Dispatch<'_, A>) -> Result<T, E>,
) -> Result<T, E> {
    crate::entity::mutate(entity, f)
}

/// Compile-time check that `A` is an aggregate with a reducer.
pub fn assert_reducer<A: Reducer>() {}
