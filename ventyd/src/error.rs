//! The error type shared by entities, repositories and storage adapters.

use std::fmt;

use crate::version::{ExpectedRevision, ExpectedVersion};

/// A boxed error from a storage backend or another lower layer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in ventyd.
///
/// Each variant names the entity, event and version involved where there is one, so a message
/// read in a log says what to look at. The payloads of the larger variants are boxed to keep
/// `Result<(), Error>` small on the hot path of mutations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event body failed its JSON Schema; every violation is listed.
    #[error(transparent)]
    Validation(Box<ValidationError>),

    /// An event name that the event enum does not declare.
    #[error(
        "unknown event name {name:?} for entity {entity_name:?}{}; available names: {}",
        at_version(*version),
        available.join(", ")
    )]
    UnknownEventName {
        /// The entity the event was read for.
        entity_name: &'static str,
        /// The entity id, where the event came from a stored stream.
        entity_id: Option<String>,
        /// The version of the stored event, where it came from a stored stream.
        version: Option<u64>,
        /// The name that was not found.
        name: String,
        /// The names the event enum declares.
        available: &'static [&'static str],
    },

    /// Optimistic concurrency: the stream was not at the version the writer expected.
    #[error(
        "concurrency conflict on {entity_name} {entity_id:?}: expected {expected}, but the stream is at version {actual}; reload the entity and retry"
    )]
    Concurrency {
        /// The entity name.
        entity_name: String,
        /// The entity id.
        entity_id: String,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The version the store holds (0 when the stream does not exist).
        actual: u64,
    },

    /// Compare-and-set on a document: it was not at the revision the writer expected.
    #[error(
        "conflict on document {key:?} of {collection:?}: expected {expected}, but {}; read it again and retry",
        match actual { Some(r) => format!("it is at revision {r}"), None => "it does not exist".to_owned() }
    )]
    DocumentConflict {
        /// The collection.
        collection: String,
        /// The document's key.
        key: String,
        /// What the writer expected.
        expected: ExpectedRevision,
        /// The revision the store holds (`None` when the document does not exist).
        actual: Option<u64>,
    },

    /// More events were queued on an entity than its queue limit allows.
    #[error(
        "the event queue of {entity_name} {entity_id:?} is full ({limit} uncommitted events); commit before dispatching more"
    )]
    QueueOverflow {
        /// The entity name.
        entity_name: &'static str,
        /// The entity id.
        entity_id: String,
        /// The configured limit.
        limit: usize,
    },

    /// A stored event could not be decoded into the typed event enum.
    #[error(transparent)]
    Decode(Box<DecodeError>),

    /// An event's JSON Schema does not compile (a bad `pattern` regex in a `#[schemars(...)]`
    /// attribute): nothing can be checked against it, so no event of that name is created,
    /// stored or loaded with a check. [`EventSchemas::check`](crate::EventSchemas::check) finds
    /// these in a test.
    #[error(transparent)]
    Schema(Box<SchemaError>),

    /// A mutation returned or dispatched the initial event on an entity that exists: an entity
    /// is created once, by `create`, and its initial event is always its first.
    #[error(
        "{entity_name} {entity_id:?} exists already: {event_name:?} is its initial event, which only `create` makes, as the first event of a stream"
    )]
    InitialAgain {
        /// The entity name.
        entity_name: &'static str,
        /// The entity id.
        entity_id: String,
        /// The initial event's name.
        event_name: &'static str,
    },

    /// [`Entity::discard_queued`](crate::Entity::discard_queued) on an entity whose creation is
    /// still queued: discarding it would leave no entity.
    #[error(
        "{entity_name} {entity_id:?} has never been committed: discarding its queued events would discard its creation; drop the entity instead"
    )]
    NeverCommitted {
        /// The entity name.
        entity_name: &'static str,
        /// The entity id.
        entity_id: String,
    },

    /// An event body could not be encoded to JSON (for example a map with non-string keys).
    #[error("cannot encode the body of {event_name:?} as JSON: {source}")]
    Encode {
        /// The event name.
        event_name: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },

    /// The storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn at_version(version: Option<u64>) -> String {
    match version {
        Some(v) => format!(" at version {v}"),
        None => String::new(),
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        Error::Validation(Box::new(e))
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(Box::new(e))
    }
}

impl Error {
    /// Is this an optimistic-concurrency conflict on a stream (worth a reload and retry)?
    pub fn is_concurrency(&self) -> bool {
        matches!(self, Error::Concurrency { .. })
    }

    /// Is this a conflict on a stream or on a document: another writer got there first, and
    /// reading again and deciding again settles it.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::Concurrency { .. } | Error::DocumentConflict { .. }
        )
    }

    /// Is the same operation, repeated unchanged, safe and worth trying again: the store was
    /// unavailable or busy, or the outcome of a commit is unknown (a commit's retry stores
    /// nothing twice). Conflicts are not retryable in this sense: the writer must read again
    /// and decide again first ([`is_conflict`](Self::is_conflict)).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Storage(e) if e.kind().is_retryable())
    }

    /// The storage error's kind, when this is one.
    pub fn storage_kind(&self) -> Option<StorageErrorKind> {
        match self {
            Error::Storage(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// The validation error, when this is one.
    pub fn as_validation(&self) -> Option<&ValidationError> {
        match self {
            Error::Validation(v) => Some(v),
            _ => None,
        }
    }
}

/// An event body that failed its JSON Schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The entity name (`"user"`).
    pub entity_name: &'static str,
    /// The entity id, when the event belongs to an entity already.
    pub entity_id: Option<String>,
    /// The full event name (`"user:created"`).
    pub event_name: &'static str,
    /// Every violation, in the validator's order.
    pub violations: Vec<Violation>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {:?} event", self.event_name)?;
        if let Some(id) = &self.entity_id {
            write!(f, " for {} {:?}", self.entity_name, id)?;
        }
        write!(f, ": ")?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// Why a mutation that returns `Result<Events, E>` did not change the entity: the aggregate
/// refused ([`Rejected`](Self::Rejected), its own business error `E`), or ventyd refused the
/// events it returned ([`Ventyd`](Self::Ventyd): a body that fails its schema, a full queue,
/// the initial event again). Either way the entity is unchanged.
///
/// `E` needs no variant for ventyd's errors. A caller that wants one error type for both
/// converts once (`impl From<MutationError<UserError>> for AppError`), or uses `?` into
/// `Box<dyn std::error::Error>` or `anyhow`.
///
/// ```
/// use ventyd::prelude::*;
/// use ventyd::MutationError;
///
/// #[event(entity = "user")]
/// #[derive(Debug, Clone)]
/// pub enum UserEvent {
///     #[event(initial)]
///     Created { email: String },
///     Renamed { #[schemars(length(min = 1))] name: String },
/// }
///
/// #[derive(Aggregate, Debug, Clone)]
/// #[aggregate(event = UserEvent)]
/// pub struct User { name: Option<String>, banned: bool }
///
/// impl Reducer for User {
///     fn init(_: &UserCreated) -> Self { User { name: None, banned: false } }
///     fn apply(&mut self, event: &UserEvent) {
///         if let UserEvent::Renamed { name } = event { self.name = Some(name.clone()) }
///     }
/// }
///
/// #[derive(Debug, PartialEq)]
/// pub enum UserError { Banned }
///
/// #[mutations]
/// impl User {
///     #[mutation]
///     pub fn rename(&self, name: String) -> Result<UserEvent, UserError> {
///         if self.banned { return Err(UserError::Banned); }
///         Ok(UserEvent::Renamed { name })
///     }
/// }
///
/// let mut user = Entity::<User>::create(UserCreated { email: "a@example.com".into() })?;
/// // The schema refuses an empty name: ventyd's error, typed.
/// match user.rename(String::new()) {
///     Err(MutationError::Ventyd(ventyd::Error::Validation(_))) => {}
///     other => panic!("{other:?}"),
/// }
/// user.rename("Ada".into())?;
/// # Ok::<(), MutationError<UserError>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum MutationError<E> {
    /// The aggregate refused: the business error its mutation returned.
    Rejected(E),
    /// ventyd refused the events the mutation returned.
    Ventyd(Error),
}

impl<E> MutationError<E> {
    /// The business error, if the aggregate refused.
    pub fn rejected(&self) -> Option<&E> {
        match self {
            MutationError::Rejected(e) => Some(e),
            MutationError::Ventyd(_) => None,
        }
    }

    /// ventyd's error, if ventyd refused the events.
    pub fn ventyd(&self) -> Option<&Error> {
        match self {
            MutationError::Ventyd(e) => Some(e),
            MutationError::Rejected(_) => None,
        }
    }

    /// One error of the aggregate's type, for a business error that has a variant for
    /// ventyd's errors anyway (`#[from] ventyd::Error`): `user.rename(n).map_err(MutationError::flatten)?`.
    pub fn flatten(self) -> E
    where
        E: From<Error>,
    {
        match self {
            MutationError::Rejected(e) => e,
            MutationError::Ventyd(e) => E::from(e),
        }
    }

    /// The business error, or ventyd's error as `Err`.
    pub fn into_rejected(self) -> Result<E, Error> {
        match self {
            MutationError::Rejected(e) => Ok(e),
            MutationError::Ventyd(e) => Err(e),
        }
    }
}

impl<E> From<Error> for MutationError<E> {
    fn from(e: Error) -> Self {
        MutationError::Ventyd(e)
    }
}

/// A mutation whose business error is ventyd's own [`Error`] (it refuses with, say, a
/// [`Error::Concurrency`] of its own making) flattens back into it, so `?` works in a function
/// that returns [`Error`].
impl From<MutationError<Error>> for Error {
    fn from(e: MutationError<Error>) -> Self {
        match e {
            MutationError::Rejected(e) | MutationError::Ventyd(e) => e,
        }
    }
}

impl<E: fmt::Display> fmt::Display for MutationError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MutationError::Rejected(e) => write!(f, "the mutation was refused: {e}"),
            MutationError::Ventyd(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for MutationError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MutationError::Rejected(e) => Some(e),
            MutationError::Ventyd(e) => std::error::Error::source(e),
        }
    }
}

/// An event's JSON Schema that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaError {
    /// The entity name.
    pub entity_name: &'static str,
    /// The event whose schema does not compile.
    pub event_name: &'static str,
    /// What the schema compiler said (the keyword and what is wrong with it).
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the JSON Schema of event {:?} (entity {:?}) does not compile: {}; fix the #[schemars(...)] attribute it comes from",
            self.event_name, self.entity_name, self.message
        )
    }
}

impl std::error::Error for SchemaError {}

impl From<SchemaError> for Error {
    fn from(e: SchemaError) -> Self {
        Error::Schema(Box::new(e))
    }
}

/// One JSON Schema violation inside an event body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer to the offending value inside the body (`"/name"`; `""` is the body itself).
    pub pointer: String,
    /// JSON pointer to the schema keyword that failed (`"/properties/name/minLength"`).
    pub schema_path: String,
    /// What is wrong, in the validator's words.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "at {at}: {}", self.message)
    }
}

/// A stored event that could not be turned back into the typed event enum.
#[derive(Debug)]
pub struct DecodeError {
    /// The entity name.
    pub entity_name: String,
    /// The entity id.
    pub entity_id: String,
    /// The version of the event in its stream.
    pub version: u64,
    /// The stored event name.
    pub event_name: String,
    /// What went wrong.
    pub reason: DecodeReason,
}

/// Why a stored event could not be decoded.
#[derive(Debug)]
#[non_exhaustive]
pub enum DecodeReason {
    /// The body is not valid JSON or does not fit the event's Rust type.
    Body(serde_json::Error),
    /// The body is JSON but fails the event's schema.
    Schema(Vec<Violation>),
    /// The first event of a stream is not the initial event.
    NotInitial {
        /// The initial event name the enum declares.
        expected: &'static str,
    },
    /// An initial event later in a stream.
    InitialAgain,
    /// Versions in the stream are not 1, 2, 3, ...
    VersionGap {
        /// The version that should have come next.
        expected: u64,
    },
    /// The stored envelope does not belong to the stream it was read for.
    WrongStream,
    /// No events at all (or version 0), where an entity needs at least its initial event.
    NoEvents,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let DecodeReason::NoEvents = self.reason {
            return write!(
                f,
                "cannot build {} {:?} at version {}: there are no events; an entity has at least its initial event, at version 1",
                self.entity_name, self.entity_id, self.version
            );
        }
        write!(
            f,
            "cannot decode event {:?} at version {} of {} {:?}: ",
            self.event_name, self.version, self.entity_name, self.entity_id
        )?;
        match &self.reason {
            DecodeReason::Body(e) => write!(f, "the body does not decode: {e}"),
            DecodeReason::Schema(vs) => {
                write!(f, "the body fails its schema: ")?;
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
            DecodeReason::NotInitial { expected } => {
                write!(f, "a stream must start with the initial event {expected:?}")
            }
            DecodeReason::InitialAgain => {
                write!(
                    f,
                    "the initial event may only be the first event of a stream"
                )
            }
            DecodeReason::VersionGap { expected } => {
                write!(f, "versions are not gapless: expected version {expected}")
            }
            DecodeReason::WrongStream => write!(f, "the event belongs to another stream"),
            DecodeReason::NoEvents => Ok(()),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            DecodeReason::Body(e) => Some(e),
            _ => None,
        }
    }
}

/// What kind of failure a [`StorageError`] is: what a caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// The store cannot be reached (a connection refused or dropped before anything was sent,
    /// a file that cannot be opened). Retrying later may succeed.
    Unavailable,
    /// The store is busy or locked by another writer past the wait it allows. Retrying later
    /// may succeed.
    Busy,
    /// A commit was sent but its outcome is not known (the connection dropped while it ran, the
    /// caller stopped waiting). It may or may not be stored; retrying the same unit is safe,
    /// because a retry stores nothing twice.
    OutcomeUnknown,
    /// Stored data cannot be read (not UTF-8, bad metadata, a number out of range, a file that
    /// is not a database).
    Corrupt,
    /// The store cannot do what was asked (a feature not compiled in, a file from a newer
    /// version).
    Unsupported,
    /// The request itself is wrong (an empty unit of work, a stream named twice, a cursor from
    /// another store, a malformed URL). Nothing was written; fix the request.
    InvalidRequest,
    /// Anything else.
    Other,
}

impl StorageErrorKind {
    /// Is an operation that failed this way worth repeating unchanged?
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            StorageErrorKind::Unavailable
                | StorageErrorKind::Busy
                | StorageErrorKind::OutcomeUnknown
        )
    }
}

impl fmt::Display for StorageErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageErrorKind::Unavailable => "store unavailable",
            StorageErrorKind::Busy => "store busy",
            StorageErrorKind::OutcomeUnknown => "outcome unknown",
            StorageErrorKind::Corrupt => "corrupt data",
            StorageErrorKind::Unsupported => "unsupported",
            StorageErrorKind::InvalidRequest => "invalid request",
            StorageErrorKind::Other => "storage error",
        })
    }
}

/// A failure inside a storage adapter: its [kind](StorageErrorKind), what the adapter was doing
/// and on what (a file, a table, an entity), and the underlying error.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {context}")]
pub struct StorageError {
    kind: StorageErrorKind,
    context: String,
    #[source]
    source: Option<BoxError>,
}

impl StorageError {
    /// A storage error of `kind`, saying what went wrong where.
    ///
    /// ```
    /// use ventyd::{StorageError, StorageErrorKind};
    ///
    /// let e = StorageError::new(StorageErrorKind::Busy, "the database app.db is locked");
    /// assert!(e.kind().is_retryable());
    /// assert_eq!(e.to_string(), "store busy: the database app.db is locked");
    /// ```
    pub fn new(kind: StorageErrorKind, context: impl Into<String>) -> Self {
        StorageError {
            kind,
            context: context.into(),
            source: None,
        }
    }

    /// A storage error of kind [`Other`](StorageErrorKind::Other) with a message.
    pub fn msg(context: impl Into<String>) -> Self {
        Self::new(StorageErrorKind::Other, context)
    }

    /// A request the store refuses ([`InvalidRequest`](StorageErrorKind::InvalidRequest)).
    pub fn invalid(context: impl Into<String>) -> Self {
        Self::new(StorageErrorKind::InvalidRequest, context)
    }

    /// A storage error of kind [`Other`](StorageErrorKind::Other) wrapping an underlying cause.
    pub fn with_source(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::new(StorageErrorKind::Other, context).caused_by(source)
    }

    /// Attaches the underlying cause.
    pub fn caused_by(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// What the adapter was doing, and on what.
    pub fn context(&self) -> &str {
        &self.context
    }
}
