//! Audit metadata: who did something, and why.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// Who did something and why: the audit part of an event.
///
/// Serialized in camelCase; unknown fields are kept in [`Metadata::extra`].
///
/// ```
/// use ventyd::Metadata;
///
/// let m = Metadata::new().actor("admin@example.com").reason("support ticket 42");
/// assert_eq!(
///     serde_json::to_string(&m).unwrap(),
///     r#"{"actor":"admin@example.com","reason":"support ticket 42"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Ties together every event caused by one request or workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The id of the message or event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// Who did it (a user id, a service name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Why it was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Free-form fields. Keys named like the fields above (`correlationId`, `causationId`,
    /// `actor`, `reason`) belong in those fields: [`Metadata::with`] puts them there, and they are
    /// not written from here.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// The camelCase names of the named fields, which free-form fields may not reuse.
const RESERVED: [&str; 4] = ["correlationId", "causationId", "actor", "reason"];

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let named = [
            ("correlationId", &self.correlation_id),
            ("causationId", &self.causation_id),
            ("actor", &self.actor),
            ("reason", &self.reason),
        ];
        let mut map = s.serialize_map(None)?;
        for (key, value) in named {
            if let Some(value) = value {
                map.serialize_entry(key, value)?;
            }
        }
        // A reserved key in `extra` would write a duplicate (or a non-string) field that could
        // not be read back.
        for (key, value) in &self.extra {
            if !RESERVED.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the causation id.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Adds a free-form field. A key named like a field above (`"actor"`, `"reason"`,
    /// `"correlationId"`, `"causationId"`) sets that field instead, to the value's text.
    ///
    /// ```
    /// use ventyd::Metadata;
    ///
    /// let m = Metadata::new().with("ip", "127.0.0.1").with("actor", 42);
    /// assert_eq!(m.actor.as_deref(), Some("42"));
    /// assert_eq!(m.extra["ip"], "127.0.0.1");
    /// ```
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        let value = value.into();
        let text = || match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match key.as_str() {
            "correlationId" => self.correlation_id = Some(text()),
            "causationId" => self.causation_id = Some(text()),
            "actor" => self.actor = Some(text()),
            "reason" => self.reason = Some(text()),
            _ => {
                self.extra.insert(key, value);
            }
        }
        self
    }

    /// `true` when no field is set.
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none()
            && self.causation_id.is_none()
            && self.actor.is_none()
            && self.reason.is_none()
            && self.extra.is_empty()
    }
}

/// Reuses the parsed metadata of the previous row when the text is the same (every event of a
/// commit carries the same metadata).
#[derive(Default)]
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) struct MetadataCache {
    last: Option<(String, std::sync::Arc<Metadata>)>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl MetadataCache {
    pub(crate) fn get(
        &mut self,
        text: Option<&str>,
    ) -> Result<Option<std::sync::Arc<Metadata>>, serde_json::Error> {
        let Some(text) = text else {
            return Ok(None);
        };
        if let Some((held, parsed)) = &self.last
            && held == text
        {
            return Ok(Some(parsed.clone()));
        }
        let parsed = std::sync::Arc::new(serde_json::from_str::<Metadata>(text)?);
        self.last = Some((text.to_owned(), parsed.clone()));
        Ok(Some(parsed))
    }
}
