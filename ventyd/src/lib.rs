#![doc = include_str!("docs/crate.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets the code the macros generate (`::ventyd::...`) name this crate from inside it too.
extern crate self as ventyd;

mod aggregate;
mod entity;
mod envelope;
mod error;
mod event;
mod event_id;
mod id;
mod metadata;
mod record;
mod repository;
pub mod storage;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod time;
mod version;

#[doc(hidden)]
pub mod __private;

pub use aggregate::{Aggregate, IntoEvents, Reducer};
pub use entity::{
    CreateOptions, DEFAULT_QUEUE_LIMIT, Dispatch, Entity, EntityConfig, ReadonlyEntity,
};
pub use envelope::Envelope;
pub use error::{
    BoxError, DecodeError, DecodeReason, Error, MutationError, SchemaError, StorageError,
    StorageErrorKind, ValidationError, Violation,
};
pub use event::{Event, EventSchema, EventSchemas, LoadValidation, contains_name};
pub use event_id::{EventId, InvalidEventId};
pub use id::{IdGenerator, SequentialIds, UuidV7};
pub use metadata::Metadata;
pub use repository::{Batch, BatchCommitted, Committed, Repository, RetryPolicy};
#[cfg(feature = "sqlite")]
pub use storage::SqliteStorage;
pub use storage::{AnyStorage, MemoryStorage, Storage};
pub use time::{Clock, FixedClock, ParseTimestampError, SystemClock, Timestamp};
pub use uuid::Uuid;
pub use version::{ExpectedRevision, ExpectedVersion};

#[doc = include_str!("docs/event.md")]
pub use ventyd_macros::event;

#[doc = include_str!("docs/body.md")]
pub use ventyd_macros::body;

#[doc = include_str!("docs/aggregate.md")]
pub use ventyd_macros::Aggregate;

#[doc = include_str!("docs/mutations.md")]
pub use ventyd_macros::mutations;

/// Marks a mutation inside a [`macro@mutations`] impl block; on its own it is an error.
pub use ventyd_macros::mutation;

/// Re-exports for `use ventyd::prelude::*;`: the macros, the traits mutations need, the entity,
/// the repository and the stores.
pub mod prelude {
    #[cfg(feature = "sqlite")]
    pub use crate::storage::SqliteStorage;
    pub use crate::storage::{MemoryStorage, Storage};
    pub use crate::{
        Aggregate, Dispatch, Entity, Event, Metadata, MutationError, ReadonlyEntity, Reducer,
        Repository, body, event, mutation, mutations,
    };
}
