//! The event envelope: an event together with who, when, where and in what order.

use std::sync::{Arc, LazyLock};

use crate::error::{DecodeError, DecodeReason, Error};
use crate::event::LoadValidation;
use crate::event::{Event, decode_event, encode_body};
use crate::event_id::EventId;
use crate::metadata::Metadata;
use crate::record::{EventRef, StoredEvent};
use crate::time::Timestamp;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

static EMPTY_METADATA: LazyLock<Metadata> = LazyLock::new(Metadata::default);

/// A typed event with its envelope, as [`Entity::events`](crate::Entity::events) returns it.
///
/// Serializes to Ventyd's camelCase shape (`eventId`, `eventName`, `eventCreatedAt`,
/// `entityName`, `entityId`, `version`, `body`) plus ventyd's `position` and `recordedAt` (once
/// committed), `schemaVersion` and `metadata` (when not empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<E> {
    pub(crate) event_id: EventId,
    pub(crate) event_created_at: Timestamp,
    pub(crate) entity_id: Arc<str>,
    pub(crate) version: u64,
    pub(crate) position: Option<u64>,
    pub(crate) recorded_at: Option<Timestamp>,
    pub(crate) schema_version: u32,
    pub(crate) metadata: Option<Arc<Metadata>>,
    pub(crate) event: E,
}

impl<E: Event> Envelope<E> {
    /// The event id: a UUID v7 for the events ventyd makes, any non-empty text for an event
    /// another writer made.
    pub fn event_id(&self) -> &EventId {
        &self.event_id
    }

    /// The full event name (`"user:created"`).
    pub fn event_name(&self) -> &'static str {
        self.event.event_name()
    }

    /// When the event was created.
    pub fn event_created_at(&self) -> Timestamp {
        self.event_created_at
    }

    /// The entity name (`"user"`).
    pub fn entity_name(&self) -> &'static str {
        E::ENTITY_NAME
    }

    /// The entity id.
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    /// The version of the entity after this event (1-based, gapless).
    ///
    /// 0 only for an envelope read from JSON that carried no `version` (a legacy Ventyd event,
    /// where the stream's order gives it): [`Entity::hydrate`](crate::Entity::hydrate) numbers
    /// such envelopes by their place in the list.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The global position the store assigned; `None` while the event is queued.
    pub fn position(&self) -> Option<u64> {
        self.position
    }

    /// When the store committed the event, by the store's clock; `None` while the event is
    /// queued. [`event_created_at`](Self::event_created_at) is the writer's time.
    pub fn recorded_at(&self) -> Option<Timestamp> {
        self.recorded_at
    }

    /// The schema version of the body.
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// Who and why; empty until the event is committed with metadata.
    pub fn metadata(&self) -> &Metadata {
        self.metadata.as_deref().unwrap_or(&EMPTY_METADATA)
    }

    /// The typed event.
    pub fn event(&self) -> &E {
        &self.event
    }

    /// The typed event, by value.
    pub fn into_event(self) -> E {
        self.event
    }

    /// Decodes a stored event, checking its body against the event's schema as `validation`
    /// says. Every failure names the entity, version and event.
    pub fn decode(stored: &StoredEvent, validation: LoadValidation) -> Result<Self, Error> {
        let stored = stored.as_event_ref();
        let entity_id: Arc<str> = Arc::from(stored.entity_id);
        let (event, envelope) =
            decode_stored::<E, E>(&stored, &entity_id, validation, |name, body| {
                body.decode_event(name)
            })?;
        Ok(envelope.with_event(event))
    }
}

pub(crate) fn decode_error(stored: &EventRef<'_>, reason: DecodeReason) -> Error {
    Error::from(DecodeError {
        entity_name: stored.entity_name.to_owned(),
        entity_id: stored.entity_id.to_owned(),
        version: stored.version,
        event_name: stored.event_name.to_owned(),
        reason,
    })
}

/// Decodes one stored event with `decode` (which picks the Rust type: the enum, or the initial
/// body for a stream's first event) and wraps it in an envelope.
pub(crate) fn decode_stored<E: Event, T>(
    stored: &EventRef<'_>,
    entity_id: &Arc<str>,
    validation: LoadValidation,
    decode: impl FnOnce(&str, DecodeBody<'_>) -> Result<T, serde_json::Error>,
) -> Result<(T, Envelope<()>), Error> {
    let Some(index) = E::name_index(stored.event_name) else {
        return Err(Error::UnknownEventName {
            entity_name: E::ENTITY_NAME,
            entity_id: Some(stored.entity_id.to_owned()),
            version: Some(stored.version),
            name: stored.event_name.to_owned(),
            available: E::NAMES,
        });
    };
    let schema = E::schemas().get(index);
    let check = match validation {
        LoadValidation::Always => true,
        LoadValidation::Never => false,
        // A body whose record shows it passed this very schema before it was stored is not
        // checked again; any other is.
        LoadValidation::Unverified => {
            stored.checked_schema.is_none()
                || stored.checked_schema != schema.map(|s| s.fingerprint())
        }
    };
    let value = match schema {
        Some(schema) if check => {
            let value: Value = serde_json::from_str(stored.body)
                .map_err(|e| decode_error(stored, DecodeReason::Body(e)))?;
            schema
                .judge(&value)?
                .map_err(|v| decode_error(stored, DecodeReason::Schema(v)))?;
            Some(value)
        }
        _ => None,
    };
    let typed = match value {
        Some(v) => decode(stored.event_name, DecodeBody::Value(v)),
        None => decode(stored.event_name, DecodeBody::Text(stored.body)),
    }
    .map_err(|e| decode_error(stored, DecodeReason::Body(e)))?;
    let envelope = Envelope {
        event_id: stored.event_id.clone(),
        event_created_at: stored.event_created_at,
        entity_id: entity_id.clone(),
        version: stored.version,
        position: Some(stored.position),
        recorded_at: Some(stored.recorded_at),
        schema_version: stored.schema_version,
        metadata: stored.metadata.cloned(),
        event: (),
    };
    Ok((typed, envelope))
}

/// A body to decode from: JSON text, or a value already parsed for validation, which is
/// consumed so that its strings move into the event instead of being copied.
pub(crate) enum DecodeBody<'a> {
    Text(&'a str),
    Value(Value),
}

impl DecodeBody<'_> {
    /// Deserializes the initial event's body `E::Initial` and the event enum `E` (named
    /// `name`) from the same body.
    pub(crate) fn decode_initial<E: Event>(
        self,
        name: &str,
    ) -> Result<(E::Initial, E), serde_json::Error> {
        match self {
            DecodeBody::Text(text) => {
                let initial = serde_json::from_str(text)?;
                Ok((initial, DecodeBody::Text(text).decode_event(name)?))
            }
            DecodeBody::Value(value) => {
                let initial = E::Initial::deserialize(&value)?;
                Ok((initial, DecodeBody::Value(value).decode_event(name)?))
            }
        }
    }

    /// Deserializes the event enum `E` named `name`.
    pub(crate) fn decode_event<E: Event>(self, name: &str) -> Result<E, serde_json::Error> {
        match self {
            DecodeBody::Text(text) => {
                let mut de = serde_json::Deserializer::from_str(text);
                let event = decode_event::<E, _>(name, &mut de)?;
                de.end()?;
                Ok(event)
            }
            DecodeBody::Value(value) => decode_event::<E, _>(name, value),
        }
    }
}

impl<T> Envelope<T> {
    pub(crate) fn with_event<E>(self, event: E) -> Envelope<E> {
        Envelope {
            event_id: self.event_id,
            event_created_at: self.event_created_at,
            entity_id: self.entity_id,
            version: self.version,
            position: self.position,
            recorded_at: self.recorded_at,
            schema_version: self.schema_version,
            metadata: self.metadata,
            event,
        }
    }
}

impl<E: Event> Serialize for Envelope<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let body = encode_body(&self.event).map_err(serde::ser::Error::custom)?;
        let metadata = self.metadata.as_deref().filter(|m| !m.is_empty());
        let len = 7
            + usize::from(self.version != 0)
            + usize::from(self.position.is_some())
            + usize::from(self.recorded_at.is_some())
            + usize::from(metadata.is_some());
        let mut st = s.serialize_struct("Envelope", len)?;
        st.serialize_field("eventId", &self.event_id)?;
        st.serialize_field("eventName", self.event.event_name())?;
        st.serialize_field("eventCreatedAt", &self.event_created_at)?;
        st.serialize_field("entityName", E::ENTITY_NAME)?;
        st.serialize_field("entityId", &*self.entity_id)?;
        // A legacy envelope without a version is written back without one.
        if self.version != 0 {
            st.serialize_field("version", &self.version)?;
        }
        st.serialize_field("body", &body)?;
        if let Some(position) = self.position {
            st.serialize_field("position", &position)?;
        }
        if let Some(at) = self.recorded_at {
            st.serialize_field("recordedAt", &at)?;
        }
        st.serialize_field("schemaVersion", &self.schema_version)?;
        if let Some(m) = metadata {
            st.serialize_field("metadata", m)?;
        }
        st.end()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    event_id: EventId,
    event_name: String,
    event_created_at: Timestamp,
    entity_name: String,
    entity_id: String,
    /// Missing in legacy Ventyd events: 0, numbered by `Entity::hydrate`.
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    position: Option<u64>,
    #[serde(default)]
    recorded_at: Option<Timestamp>,
    #[serde(default = "one")]
    schema_version: u32,
    #[serde(default)]
    metadata: Option<Metadata>,
    body: Value,
}

fn one() -> u32 {
    1
}

impl<'de, E: Event> Deserialize<'de> for Envelope<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let raw = RawEnvelope::deserialize(d)?;
        // Every refusal says which event of which entity it is, as far as the envelope says.
        let at = match raw.version {
            Some(v) => format!(" at version {v}"),
            None => String::new(),
        };
        let which = format!(
            "the envelope of {:?}{at} of {} {:?}",
            raw.event_name, raw.entity_name, raw.entity_id
        );
        if raw.entity_name != E::ENTITY_NAME {
            return Err(D::Error::custom(format_args!(
                "{which}: entityName {:?} does not match {:?}",
                raw.entity_name,
                E::ENTITY_NAME
            )));
        }
        let Some(index) = E::name_index(&raw.event_name) else {
            return Err(D::Error::custom(format_args!(
                "{which}: unknown eventName {:?}; available names: {}",
                raw.event_name,
                E::NAMES.join(", ")
            )));
        };
        let version = match raw.version {
            Some(0) => {
                return Err(D::Error::custom(format_args!(
                    "{which}: version must be 1 or more (or left out, for a legacy event)"
                )));
            }
            Some(version) => version,
            None => 0,
        };
        // An envelope read from JSON comes from outside (another service, a message bus): its
        // body is checked against its schema like any event about to be applied.
        if let Some(schema) = E::schemas().get(index) {
            schema
                .check()
                .map_err(|e| D::Error::custom(format_args!("{which}: {e}")))?;
            schema.validate(&raw.body).map_err(|violations| {
                let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
                D::Error::custom(format_args!(
                    "{which}: the body fails its schema: {}",
                    list.join("; ")
                ))
            })?;
        }
        let event = decode_event::<E, _>(&raw.event_name, &raw.body).map_err(|e| {
            D::Error::custom(format_args!("{which}: the body does not decode: {e}"))
        })?;
        Ok(Envelope {
            event_id: raw.event_id,
            event_created_at: raw.event_created_at,
            entity_id: Arc::from(raw.entity_id),
            version,
            position: raw.position,
            recorded_at: raw.recorded_at,
            schema_version: raw.schema_version,
            metadata: raw.metadata.filter(|m| !m.is_empty()).map(Arc::new),
            event,
        })
    }
}
