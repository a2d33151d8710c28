//! Event ids: a UUID, or any other non-empty text another writer chose.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// An event id: any non-empty text, as in Ventyd, whose `generateId` may return any string.
///
/// ventyd makes UUID v7 ids ([`UuidV7`](crate::UuidV7)); events written by another writer (a
/// TypeScript Ventyd service sharing the store, a foreign SQL client) may carry other ids
/// (`"evt_01J..."`, a ULID, a nanoid), and load like any other. An id **is** its text: two ids
/// are the same id when their text is the same, byte for byte, so `"0190F3A4-..."` (upper case)
/// and `"0190f3a4-..."` are two ids, as they are to Ventyd and to a store's unique index.
///
/// An id whose text is a UUID in the form ventyd writes (lowercase, hyphenated,
/// `0190f3a4-7b1c-7d2e-8f00-0123456789ab`) is held as the 16 bytes of the UUID, so the ids
/// ventyd makes cost no allocation to copy, compare or hash; [`as_uuid`](Self::as_uuid) returns
/// it. Any other text is held as shared text and copied by reference count.
///
/// ```
/// use ventyd::{EventId, Uuid};
///
/// let made = EventId::from(Uuid::from_u128(0x0190_f3a4_7b1c_7d2e_8f00_0123_4567_89ab));
/// assert_eq!(made.to_string(), "0190f3a4-7b1c-7d2e-8f00-0123456789ab");
///
/// // The same text, parsed, is the same id.
/// let parsed: EventId = "0190f3a4-7b1c-7d2e-8f00-0123456789ab".parse()?;
/// assert_eq!(parsed, made);
/// assert!(parsed.as_uuid().is_some());
///
/// // Any other non-empty text is an id too, kept as written.
/// let foreign: EventId = "evt_V1StGXR8_Z5jdHi6B".parse()?;
/// assert_eq!(foreign.as_uuid(), None);
/// assert_eq!(foreign.to_string(), "evt_V1StGXR8_Z5jdHi6B");
///
/// // Upper case is other text: not the same id.
/// let upper: EventId = "0190F3A4-7B1C-7D2E-8F00-0123456789AB".parse()?;
/// assert_ne!(upper, made);
///
/// assert!("".parse::<EventId>().is_err());
/// # Ok::<(), ventyd::InvalidEventId>(())
/// ```
#[derive(Clone)]
pub struct EventId(Repr);

#[derive(Clone)]
enum Repr {
    /// A UUID; its text is the lowercase hyphenated form. Text of that form is always held here,
    /// never as `Text`, so that each id has one representation and equality is structural.
    Uuid(Uuid),
    /// Any other non-empty text.
    Text(Arc<str>),
}

/// Why text is not an event id: it is empty, the only text Ventyd's ids may not be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InvalidEventId;

impl fmt::Display for InvalidEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event id must not be empty")
    }
}

impl std::error::Error for InvalidEventId {}

/// The length of a hyphenated UUID's text.
const UUID_TEXT_LEN: usize = 36;

impl EventId {
    /// The id with this text; refused only when the text is empty.
    pub fn parse(text: &str) -> Result<EventId, InvalidEventId> {
        match Self::canonical_uuid(text.as_bytes()) {
            Some(uuid) => Ok(EventId(Repr::Uuid(uuid))),
            None if text.is_empty() => Err(InvalidEventId),
            None => Ok(EventId(Repr::Text(Arc::from(text)))),
        }
    }

    /// The id with this text, taking the `String` without copying it when it is not a UUID.
    fn from_string(text: String) -> Result<EventId, InvalidEventId> {
        match Self::canonical_uuid(text.as_bytes()) {
            Some(uuid) => Ok(EventId(Repr::Uuid(uuid))),
            None if text.is_empty() => Err(InvalidEventId),
            None => Ok(EventId(Repr::Text(Arc::from(text)))),
        }
    }

    /// The id whose text is `bytes`, as a store reads it from a row: the text of a UUID in
    /// ventyd's spelling is parsed from the bytes without a UTF-8 check first (it is ASCII);
    /// other text must be UTF-8. `None` for bytes that are not UTF-8, `Err` for empty text.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn from_utf8(bytes: &[u8]) -> Option<Result<EventId, InvalidEventId>> {
        if let Some(uuid) = Self::canonical_uuid(bytes) {
            return Some(Ok(EventId(Repr::Uuid(uuid))));
        }
        let text = std::str::from_utf8(bytes).ok()?;
        Some(if text.is_empty() {
            Err(InvalidEventId)
        } else {
            Ok(EventId(Repr::Text(Arc::from(text))))
        })
    }

    /// The UUID whose lowercase hyphenated text is exactly `bytes`, if there is one.
    fn canonical_uuid(bytes: &[u8]) -> Option<Uuid> {
        if bytes.len() != UUID_TEXT_LEN || bytes.iter().any(u8::is_ascii_uppercase) {
            return None;
        }
        // At 36 bytes the only form the parser accepts is the hyphenated one.
        Uuid::try_parse_ascii(bytes).ok()
    }

    /// The UUID, when the id's text is one in the form ventyd writes (lowercase, hyphenated).
    pub fn as_uuid(&self) -> Option<Uuid> {
        match &self.0 {
            Repr::Uuid(uuid) => Some(*uuid),
            Repr::Text(_) => None,
        }
    }

    /// Calls `f` with the id's text, without allocating: what an adapter binds to a query.
    ///
    /// ```
    /// use ventyd::{EventId, Uuid};
    ///
    /// let id = EventId::from(Uuid::from_u128(1));
    /// assert_eq!(id.with_str(str::len), 36);
    /// ```
    pub fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match &self.0 {
            Repr::Uuid(uuid) => f(uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer())),
            Repr::Text(text) => f(text),
        }
    }
}

impl From<Uuid> for EventId {
    fn from(uuid: Uuid) -> Self {
        EventId(Repr::Uuid(uuid))
    }
}

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        EventId::parse(text)
    }
}

impl TryFrom<&str> for EventId {
    type Error = InvalidEventId;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        EventId::parse(text)
    }
}

impl TryFrom<String> for EventId {
    type Error = InvalidEventId;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        EventId::from_string(text)
    }
}

impl PartialEq for EventId {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Uuid(a), Repr::Uuid(b)) => a == b,
            (Repr::Text(a), Repr::Text(b)) => a == b,
            // Text never holds a UUID's canonical form, so the two kinds never meet.
            _ => false,
        }
    }
}

impl Eq for EventId {}

impl PartialEq<Uuid> for EventId {
    fn eq(&self, other: &Uuid) -> bool {
        self.as_uuid() == Some(*other)
    }
}

impl Hash for EventId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Repr::Uuid(uuid) => {
                state.write_u8(0);
                uuid.hash(state);
            }
            Repr::Text(text) => {
                state.write_u8(1);
                text.hash(state);
            }
        }
    }
}

impl Ord for EventId {
    /// By text, byte for byte. For two UUIDs that is the order of their 16 bytes (lowercase hex
    /// digits sort as their values, and the hyphens stand in the same places), so UUID v7 ids
    /// sort by the time they were made.
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Repr::Uuid(a), Repr::Uuid(b)) => a.cmp(b),
            _ => self.with_str(|a| other.with_str(|b| a.cmp(b))),
        }
    }
}

impl PartialOrd for EventId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Uuid(uuid) => fmt::Display::fmt(&uuid.hyphenated(), f),
            Repr::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({:?})", self.to_string())
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_str(|text| s.serialize_str(text))
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = EventId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event id (non-empty text)")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<EventId, E> {
                EventId::parse(text).map_err(E::custom)
            }

            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<EventId, E> {
                EventId::from_string(text).map_err(E::custom)
            }
        }

        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const CANONICAL: &str = "0190f3a4-7b1c-7d2e-8f00-0123456789ab";

    #[test]
    fn canonical_uuid_text_is_held_as_the_uuid_and_other_uuid_spellings_are_text() {
        let id = EventId::parse(CANONICAL).unwrap();
        assert!(matches!(id.0, Repr::Uuid(_)));
        for other in [
            "0190F3A4-7B1C-7D2E-8F00-0123456789AB",
            "0190f3a47b1c7d2e8f000123456789ab",
            "{0190f3a4-7b1c-7d2e-8f00-0123456789ab}",
            "urn:uuid:0190f3a4-7b1c-7d2e-8f00-0123456789ab",
            "0190f3a4-7b1c-7d2e-8f00-0123456789aB",
            "0190f3a4-7b1c-7d2e-8f00-0123456789a\u{e9}",
        ] {
            let id = EventId::parse(other).unwrap();
            assert!(matches!(id.0, Repr::Text(_)), "{other}");
            assert_eq!(id.to_string(), other);
            assert_ne!(id, EventId::parse(CANONICAL).unwrap());
        }
    }

    #[test]
    fn equality_hash_and_order_follow_the_text() {
        let ids: Vec<EventId> = [
            CANONICAL,
            "0190f3a4-7b1c-7d2e-8f00-0123456789ac",
            "0190F3A4-7B1C-7D2E-8F00-0123456789AB",
            "a",
            "evt_1",
            "00000000-0000-7000-8000-000000000001",
            "\u{1F600}",
        ]
        .iter()
        .map(|t| EventId::parse(t).unwrap())
        .collect();
        let mut by_id = ids.clone();
        by_id.sort();
        let mut by_text: Vec<String> = ids.iter().map(ToString::to_string).collect();
        by_text.sort();
        assert_eq!(
            by_id.iter().map(ToString::to_string).collect::<Vec<_>>(),
            by_text
        );
        let set: HashSet<EventId> = ids.iter().cloned().chain(ids.iter().cloned()).collect();
        assert_eq!(set.len(), ids.len());
        // UUIDs compare as their bytes, which is the order of their text.
        let a = EventId::from(Uuid::from_u128(0x0f));
        let b = EventId::from(Uuid::from_u128(0xa0));
        assert!(a < b && a.to_string() < b.to_string());
    }

    #[test]
    fn empty_text_is_refused_everywhere() {
        assert_eq!(EventId::parse(""), Err(InvalidEventId));
        assert_eq!(EventId::try_from(String::new()), Err(InvalidEventId));
        let e = serde_json::from_str::<EventId>(r#""""#).unwrap_err();
        assert!(e.to_string().contains("must not be empty"), "{e}");
        let e = serde_json::from_str::<EventId>("7").unwrap_err();
        assert!(e.to_string().contains("non-empty text"), "{e}");
    }

    #[test]
    fn serde_round_trips_the_text() {
        for text in [CANONICAL, "evt_V1StGXR8_Z5jdHi6B", " spaced ", "\u{e9}"] {
            let id = EventId::parse(text).unwrap();
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            // Through both visitor paths: borrowed and owned (escaped) text.
            let back: EventId = serde_json::from_str(&json).unwrap();
            assert_eq!(back, id);
            let owned: EventId = serde_json::from_value(serde_json::Value::from(text)).unwrap();
            assert_eq!(owned, id);
        }
    }
}
