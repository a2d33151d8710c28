//! Events: the [`Event`] trait that `#[event]` implements, their JSON Schemas and validation.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::error::{Error, SchemaError, Violation};

/// An event enum: one variant per event of one entity.
///
/// It cannot be implemented by hand (it is sealed): write `#[ventyd::event(entity = "...")]` on
/// the enum, which derives the wire format (`{"eventName": "user:created", "body": {...}}`), the name table and the
/// schemas from one source so that they can never disagree.
///
/// ```
/// use ventyd::prelude::*;
///
/// #[event(entity = "user")]
/// #[derive(Debug, Clone)]
/// pub enum UserEvent {
///     #[event(initial)]
///     Created { email: String },
///     #[event(rename = "renamed")]
///     NameUpdated { name: String },
/// }
///
/// assert_eq!(UserEvent::ENTITY_NAME, "user");
/// assert_eq!(UserEvent::NAMES, ["user:created", "user:renamed"]);
/// assert_eq!(UserEvent::NameUpdated { name: "A".into() }.event_name(), "user:renamed");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event enum",
    label = "not an `#[event]` enum",
    note = "annotate the enum with `#[ventyd::event(entity = \"...\")]`"
)]
pub trait Event:
    crate::__private::EventSealed
    + Serialize
    + DeserializeOwned
    + schemars::JsonSchema
    + Clone
    + Send
    + Sync
    + 'static
{
    /// The body of the initial event: the only thing an entity can be created from.
    type Initial: Into<Self> + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The entity name (`"user"`).
    const ENTITY_NAME: &'static str;
    /// The separator between entity name and event name (`":"`).
    const SEPARATOR: &'static str;
    /// Every full event name, in variant order.
    const NAMES: &'static [&'static str];
    /// The full name of the initial event.
    const INITIAL_NAME: &'static str;

    /// The full name of this event (`"user:created"`).
    fn event_name(&self) -> &'static str;

    /// The position of this event's variant in [`Event::NAMES`].
    fn variant_index(&self) -> usize;

    /// The position of a full event name in [`Event::NAMES`].
    fn name_index(name: &str) -> Option<usize>;

    /// The schemas and compiled validators of every event body, built once per process.
    fn schemas() -> &'static EventSchemas;
}

/// `true` when `name` is one of `names`; usable in constant evaluation (see [`event_name!`]).
///
/// [`event_name!`]: crate::event_name
pub const fn contains_name(names: &[&str], name: &str) -> bool {
    let mut i = 0;
    while i < names.len() {
        if const_str_eq(names[i], name) {
            return true;
        }
        i += 1;
    }
    false
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// An event name as a string, checked at compile time against the event enum.
///
/// For code that must name events as strings (queries, subscriptions, routing), this fails to
/// compile when the name is not declared, so a rename cannot leave a stale string behind.
///
/// ```
/// use ventyd::prelude::*;
///
/// #[event(entity = "user")]
/// #[derive(Debug, Clone)]
/// pub enum UserEvent {
///     #[event(initial)]
///     Created { email: String },
/// }
///
/// const CREATED: &str = ventyd::event_name!(UserEvent, "user:created");
/// assert_eq!(CREATED, "user:created");
/// ```
///
/// ```compile_fail
/// # use ventyd::prelude::*;
/// # #[event(entity = "user")]
/// # #[derive(Debug, Clone)]
/// # pub enum UserEvent { #[event(initial)] Created { email: String } }
/// const NOPE: &str = ventyd::event_name!(UserEvent, "user:nope");
/// ```
#[macro_export]
macro_rules! event_name {
    ($event:ty, $name:literal) => {{
        const NAME: &str = {
            if !$crate::contains_name(<$event as $crate::Event>::NAMES, $name) {
                ::core::panic!(::core::concat!(
                    "unknown event name ",
                    ::core::stringify!($name),
                    " for ",
                    ::core::stringify!($event)
                ));
            }
            $name
        };
        NAME
    }};
}

/// The JSON Schema and compiled validator of one event body.
pub struct EventSchema {
    entity_name: &'static str,
    name: &'static str,
    schema: Value,
    fingerprint: u64,
    /// The compiled validator, or what the compiler said of a schema that does not compile.
    validator: Result<jsonschema::Validator, String>,
}

impl fmt::Debug for EventSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSchema")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl EventSchema {
    /// The full event name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The JSON Schema (draft 2020-12) of the event body.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// A 64-bit fingerprint of what the schema checks: FNV-1a over a canonical text of the
    /// schema that leaves out annotations (`title`, `description`, `examples`, `default`,
    /// `$comment`, `deprecated`, `readOnly`, `writeOnly`) and sorts object keys itself. Stored
    /// with each event as the record of the schema its body was checked against, so it changes
    /// only when the rules change: not with a doc comment, and not with the key order of
    /// `serde_json` maps (which another crate can change by turning on `preserve_order`).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Whether the schema compiled: `Err` names the event and says what is wrong (a bad
    /// `pattern` regex, say). ventyd refuses to create, store or check events of a schema that
    /// does not compile, with this error; it never panics over one.
    pub fn check(&self) -> Result<(), SchemaError> {
        match &self.validator {
            Ok(_) => Ok(()),
            Err(message) => Err(SchemaError {
                entity_name: self.entity_name,
                event_name: self.name,
                message: message.clone(),
            }),
        }
    }

    /// Checks a body against the schema and lists every violation.
    ///
    /// A schema that does not compile ([`check`](Self::check)) accepts no body: the one
    /// violation returned, at the body itself, says so.
    pub fn validate(&self, body: &Value) -> Result<(), Vec<Violation>> {
        let validator = match &self.validator {
            Ok(validator) => validator,
            Err(message) => {
                return Err(vec![Violation {
                    pointer: String::new(),
                    schema_path: String::new(),
                    message: format!("the schema does not compile: {message}"),
                }]);
            }
        };
        // The fast path answers without building error values; only a bad body pays for them.
        if validator.is_valid(body) {
            return Ok(());
        }
        let mut violations = Vec::new();
        for error in validator.iter_errors(body) {
            flatten(&error, &mut violations);
        }
        Err(violations)
    }

    /// Checks a body, for ventyd's own callers: a schema that does not compile is
    /// [`Error::Schema`](crate::Error::Schema), a body that fails is `Ok(Err(violations))`.
    pub(crate) fn judge(&self, body: &Value) -> Result<Result<(), Vec<Violation>>, SchemaError> {
        self.check()?;
        Ok(self.validate(body))
    }
}

/// Adds a validator error to `out`, replacing an `anyOf`/`oneOf` failure by the errors of the
/// branch that explains it. An `Option<Address>` is `anyOf [Address, null]`: a bad
/// `/billing/country` would otherwise be reported only as "`/billing` is not valid under any of
/// the schemas", hiding the field and the rule that failed.
///
/// The explaining branches: leave out those that fail only because the value has another type
/// (the `null` of an `Option`, the object variants of an enum given a string); of the rest, keep
/// the ones whose errors reach deepest into the value, when they reach deeper than the `anyOf`
/// itself or are the only ones left.
fn flatten(error: &jsonschema::ValidationError<'_>, out: &mut Vec<Violation>) {
    use jsonschema::error::ValidationErrorKind as Kind;
    type Branch = Vec<jsonschema::ValidationError<'static>>;
    let pointer = error.instance_path().as_str();
    if let Kind::AnyOf { context } | Kind::OneOfNotValid { context } = error.kind() {
        let depth =
            |e: &jsonschema::ValidationError<'_>| e.instance_path().as_str().matches('/').count();
        let reach = |branch: &Branch| branch.iter().map(depth).max().unwrap_or(0);
        let wrong_type = |branch: &Branch| {
            branch.iter().all(|e| {
                matches!(e.kind(), Kind::Type { .. }) && e.instance_path().as_str() == pointer
            })
        };
        let candidates: Vec<&Branch> = context.iter().filter(|b| !wrong_type(b)).collect();
        let best = candidates.iter().map(|b| reach(b)).max().unwrap_or(0);
        let deeper = best > pointer.matches('/').count();
        if !candidates.is_empty() && (deeper || candidates.len() == 1) {
            for branch in candidates.into_iter().filter(|b| reach(b) == best) {
                for e in branch {
                    flatten(e, out);
                }
            }
            return;
        }
    }
    out.push(Violation {
        pointer: pointer.to_owned(),
        schema_path: error.schema_path().as_str().to_owned(),
        message: error.to_string(),
    });
}

/// The schemas of every event of one event enum, in variant order.
#[derive(Debug)]
pub struct EventSchemas {
    events: Box<[EventSchema]>,
}

impl EventSchemas {
    /// Generates the enum's schema with schemars and splits it into one schema per event body,
    /// each compiled once. Called by the code `#[event]` generates, inside a `OnceLock`.
    ///
    /// # Panics
    /// When schemars produces a shape this function does not know; that is a bug in ventyd,
    /// never a consequence of user input, and the tests cover every supported variant shape.
    pub fn build<E: Event>() -> Self {
        let root = schemars::schema_for!(E).to_value();
        let defs = root.get("$defs").cloned();
        let branches = root
            .get("oneOf")
            .and_then(Value::as_array)
            .map(|v| v.as_slice())
            // A single-variant enum may come out as the branch itself.
            .unwrap_or(std::slice::from_ref(&root));
        let events = E::NAMES
            .iter()
            .map(|&name| {
                let branch = branches
                    .iter()
                    .find(|b| {
                        b.pointer("/properties/eventName/const")
                            .or_else(|| b.pointer("/properties/eventName/enum/0"))
                            .and_then(Value::as_str)
                            == Some(name)
                    })
                    .unwrap_or_else(|| {
                        panic!("ventyd: no schema branch for event {name:?} in {root}")
                    });
                let mut schema = branch
                    .pointer("/properties/body")
                    .cloned()
                    .unwrap_or_else(|| panic!("ventyd: no body schema for event {name:?}"));
                if let Some(defs) = defs.as_ref().and_then(Value::as_object) {
                    let used = referenced_defs(&schema, defs);
                    if !used.is_empty() {
                        if let Value::Bool(true) = schema {
                            schema = Value::Object(serde_json::Map::new());
                        }
                        if let Value::Object(map) = &mut schema {
                            map.insert("$defs".into(), Value::Object(used));
                        }
                    }
                }
                // A schema that does not compile (a bad regex in a user's attribute) is kept
                // with its error, which every use then reports: no panic, and the other
                // events of the enum keep working.
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .build(&schema)
                    .map_err(|e| {
                        let at = e.schema_path().as_str();
                        if at.is_empty() {
                            e.to_string()
                        } else {
                            format!("{e} (at {at} in the schema)")
                        }
                    });
                EventSchema {
                    entity_name: E::ENTITY_NAME,
                    name,
                    fingerprint: fingerprint(&schema),
                    schema,
                    validator,
                }
            })
            .collect();
        EventSchemas { events }
    }

    /// The schema at a variant index.
    pub fn get(&self, index: usize) -> Option<&EventSchema> {
        self.events.get(index)
    }

    /// The schema of a full event name.
    pub fn by_name(&self, name: &str) -> Option<&EventSchema> {
        self.events.iter().find(|s| s.name == name)
    }

    /// Every event schema, in variant order.
    pub fn iter(&self) -> impl Iterator<Item = &EventSchema> {
        self.events.iter()
    }

    /// Whether every event's schema compiles: run it in a test, so that a bad `#[schemars]`
    /// attribute fails the build's tests instead of the first mutation in production.
    ///
    /// ```
    /// use ventyd::prelude::*;
    ///
    /// #[event(entity = "user")]
    /// #[derive(Debug, Clone)]
    /// pub enum UserEvent {
    ///     #[event(initial)]
    ///     Created { #[schemars(regex(pattern = r"^[a-z]+$"))] handle: String },
    /// }
    ///
    /// UserEvent::schemas().check().unwrap();
    /// ```
    ///
    /// # Errors
    /// The first event whose schema does not compile; the message lists the others too.
    pub fn check(&self) -> Result<(), Error> {
        let mut failed = self.events.iter().filter_map(|e| e.check().err());
        let Some(mut first) = failed.next() else {
            return Ok(());
        };
        for other in failed {
            first.message.push_str(&format!(
                "; and the schema of {:?} does not compile either: {}",
                other.event_name, other.message
            ));
        }
        Err(first.into())
    }
}

/// The fingerprint of a schema: FNV-1a over [`canonical`] text.
pub(crate) fn fingerprint(schema: &Value) -> u64 {
    let mut text = String::new();
    canonical(schema, Position::Schema, &mut text);
    fnv1a(text.as_bytes())
}

/// Where a JSON value sits in a schema: what its object keys are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    /// A schema: its keys are keywords, and annotations among them are left out.
    Schema,
    /// A map from names to schemas (`properties`, `$defs`, ...): its keys are names, all kept.
    Names,
    /// A list of schemas (`allOf`, `prefixItems`, ...).
    Schemas,
    /// Data (`const`, `enum`, `required`, ...): kept whole.
    Data,
}

/// Keywords that do not take part in validation (JSON Schema 2020-12, "meta-data" and
/// `$comment`).
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "default",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// What the value of the keyword `key` of a schema is.
fn position_of(key: &str) -> Position {
    match key {
        "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
            Position::Names
        }
        "allOf" | "anyOf" | "oneOf" | "prefixItems" => Position::Schemas,
        "items"
        | "additionalItems"
        | "additionalProperties"
        | "unevaluatedItems"
        | "unevaluatedProperties"
        | "contains"
        | "propertyNames"
        | "not"
        | "if"
        | "then"
        | "else" => Position::Schema,
        _ => Position::Data,
    }
}

/// Writes `value` as JSON with object keys in byte order, whatever the map's own order, and
/// without the annotation keywords of the schemas it holds.
fn canonical(value: &Value, at: Position, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map
                .keys()
                .filter(|k| at != Position::Schema || !ANNOTATIONS.contains(&k.as_str()))
                .collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                let inner = match at {
                    Position::Schema => position_of(key),
                    Position::Names => Position::Schema,
                    Position::Schemas | Position::Data => Position::Data,
                };
                canonical(&map[key.as_str()], inner, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            let inner = match at {
                // `items` may be a list of schemas in older drafts.
                Position::Schemas | Position::Schema => Position::Schema,
                Position::Names | Position::Data => Position::Data,
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, inner, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// FNV-1a, 64 bits (Fowler, Noll and Vo): a stable hash with no dependency, for fingerprints
/// that must not change between processes or Rust versions (std's hashers may).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The definitions a body schema refers to, directly or through other definitions, so that each
/// event's schema carries only what it uses (and a change to one type changes only the schemas of
/// the events that contain it).
fn referenced_defs(
    schema: &Value,
    defs: &serde_json::Map<String, Value>,
) -> serde_json::Map<String, Value> {
    fn refs<'a>(v: &'a Value, found: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => {
                            if let Some(name) = r.strip_prefix("#/$defs/") {
                                found.push(name);
                            }
                        }
                        _ => refs(v, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut used = serde_json::Map::new();
    let mut pending = Vec::new();
    refs(schema, &mut pending);
    while let Some(name) = pending.pop() {
        if used.contains_key(name) {
            continue;
        }
        if let Some(def) = defs.get(name) {
            used.insert(name.to_owned(), def.clone());
            refs(def, &mut pending);
        }
    }
    used
}

/// Serializes the body of an event (the `body` of its `{"eventName", "body"}` form) straight into
/// a value, without building the surrounding object: serde writes an adjacently tagged enum as a
/// two-field struct, and [`BodyOnly`] keeps the second field only.
pub(crate) fn encode_body<E: Event>(event: &E) -> Result<Value, serde_json::Error> {
    event.serialize(BodyOnly)
}

/// A serializer that accepts only the struct serde makes of an adjacently tagged enum, and
/// returns its `body` field as a value.
struct BodyOnly;

struct CaptureBody(Option<Value>);

fn not_an_event<T>() -> Result<T, serde_json::Error> {
    Err(serde::ser::Error::custom(
        "expected an adjacently tagged event enum (`#[ventyd::event]`)",
    ))
}

macro_rules! reject {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<Value, serde_json::Error> {
            not_an_event()
        })*
    };
}

impl serde::Serializer for BodyOnly {
    type Ok = Value;
    type Error = serde_json::Error;
    type SerializeSeq = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeTuple = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeTupleStruct = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeTupleVariant = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeMap = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeStruct = CaptureBody;
    type SerializeStructVariant = serde::ser::Impossible<Value, serde_json::Error>;

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<CaptureBody, serde_json::Error> {
        Ok(CaptureBody(None))
    }

    reject! {
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]), serialize_none(), serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Value, serde_json::Error> {
        not_an_event()
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Value, serde_json::Error> {
        not_an_event()
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Value, serde_json::Error> {
        not_an_event()
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, serde_json::Error> {
        not_an_event()
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, serde_json::Error> {
        not_an_event()
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, serde_json::Error> {
        not_an_event()
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, serde_json::Error> {
        not_an_event()
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, serde_json::Error> {
        not_an_event()
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, serde_json::Error> {
        not_an_event()
    }
}

impl serde::ser::SerializeStruct for CaptureBody {
    type Ok = Value;
    type Error = serde_json::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        if key == "body" {
            self.0 = Some(value.serialize(serde_json::value::Serializer)?);
        }
        Ok(())
    }

    fn end(self) -> Result<Value, serde_json::Error> {
        Ok(self.0.unwrap_or(Value::Null))
    }
}

/// Decodes an event from its name and a body deserializer (JSON text or a `Value`), without
/// building the `{"eventName", "body"}` object first.
pub(crate) fn decode_event<'de, E, B>(name: &str, body: B) -> Result<E, serde_json::Error>
where
    E: Event,
    B: de::Deserializer<'de, Error = serde_json::Error>,
{
    E::deserialize(Tagged {
        name,
        body: Some(body),
        step: 0,
    })
}

/// Presents `name` and `body` to serde as the map `{"eventName": name, "body": body}`, tag first,
/// which is the order in which serde's adjacently tagged enums decode without buffering.
struct Tagged<'a, B> {
    name: &'a str,
    body: Option<B>,
    step: u8,
}

impl<'de, B> de::Deserializer<'de> for Tagged<'_, B>
where
    B: de::Deserializer<'de, Error = serde_json::Error>,
{
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, B> MapAccess<'de> for Tagged<'_, B>
where
    B: de::Deserializer<'de, Error = serde_json::Error>,
{
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let key = match self.step {
            0 => "eventName",
            1 => "body",
            _ => return Ok(None),
        };
        seed.deserialize(IntoDeserializer::<serde_json::Error>::into_deserializer(
            key,
        ))
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.step += 1;
        if self.step == 1 {
            seed.deserialize(IntoDeserializer::<serde_json::Error>::into_deserializer(
                self.name,
            ))
        } else {
            let body = self
                .body
                .take()
                .ok_or_else(|| <serde_json::Error as de::Error>::custom("body read twice"))?;
            seed.deserialize(body)
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A hand-written event enum, shaped as `#[event]` shapes one, so that the runtime's schema
    /// splitting and decoding are tested without the macros.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[serde(tag = "eventName", content = "body")]
    enum Ev {
        #[serde(rename = "t:opened")]
        Opened {
            #[schemars(email)]
            email: String,
        },
        #[serde(rename = "t:renamed")]
        Renamed {
            #[schemars(length(min = 1, max = 5))]
            name: String,
            tags: Vec<Tag>,
        },
        #[serde(rename = "t:wrapped")]
        Wrapped(Tag),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    struct Tag {
        #[schemars(range(min = 1))]
        weight: u32,
    }

    impl crate::__private::EventSealed for Ev {}

    impl Event for Ev {
        type Initial = Ev;
        const ENTITY_NAME: &'static str = "t";
        const SEPARATOR: &'static str = ":";
        const NAMES: &'static [&'static str] = &["t:opened", "t:renamed", "t:wrapped"];
        const INITIAL_NAME: &'static str = "t:opened";
        fn event_name(&self) -> &'static str {
            Self::NAMES[self.variant_index()]
        }
        fn variant_index(&self) -> usize {
            match self {
                Ev::Opened { .. } => 0,
                Ev::Renamed { .. } => 1,
                Ev::Wrapped(_) => 2,
            }
        }
        fn name_index(name: &str) -> Option<usize> {
            Self::NAMES.iter().position(|n| *n == name)
        }
        fn schemas() -> &'static EventSchemas {
            static S: std::sync::OnceLock<EventSchemas> = std::sync::OnceLock::new();
            S.get_or_init(EventSchemas::build::<Self>)
        }
    }

    #[test]
    fn splits_one_schema_per_event_body() {
        let s = Ev::schemas();
        assert_eq!(s.iter().count(), 3);
        let renamed = s.by_name("t:renamed").unwrap();
        assert_eq!(
            renamed.schema()["properties"]["name"]["minLength"],
            serde_json::json!(1)
        );
        assert!(
            renamed.schema().get("$defs").is_some(),
            "$defs carried over"
        );
        assert!(
            s.get(0)
                .unwrap()
                .validate(&serde_json::json!({"email": "a@b.example"}))
                .is_ok()
        );
    }

    #[test]
    fn lists_every_violation_with_pointers() {
        let body = serde_json::json!({"name": "toolong", "tags": [{"weight": 0}, {"weight": "x"}]});
        let v = Ev::schemas().get(1).unwrap().validate(&body).unwrap_err();
        let pointers: Vec<_> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/name"), "{v:?}");
        assert!(pointers.contains(&"/tags/0/weight"), "{v:?}");
        assert!(pointers.contains(&"/tags/1/weight"), "{v:?}");
    }

    #[test]
    fn formats_are_validated() {
        let v = Ev::schemas()
            .get(0)
            .unwrap()
            .validate(&serde_json::json!({"email": "not an email"}))
            .unwrap_err();
        assert_eq!(v[0].pointer, "/email");
    }

    #[test]
    fn encodes_and_decodes_bodies_without_the_tag() {
        let e = Ev::Renamed {
            name: "ab".into(),
            tags: vec![Tag { weight: 2 }],
        };
        let body = encode_body(&e).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"name": "ab", "tags": [{"weight": 2}]})
        );
        let text = body.to_string();
        let mut de = serde_json::Deserializer::from_str(&text);
        assert_eq!(decode_event::<Ev, _>("t:renamed", &mut de).unwrap(), e);
        assert_eq!(decode_event::<Ev, _>("t:renamed", &body).unwrap(), e);
        let w = Ev::Wrapped(Tag { weight: 3 });
        assert_eq!(
            decode_event::<Ev, _>("t:wrapped", &encode_body(&w).unwrap()).unwrap(),
            w
        );
        let err = decode_event::<Ev, _>("t:nope", &body).unwrap_err();
        assert!(err.to_string().contains("t:nope"), "{err}");
    }

    #[test]
    fn fingerprints_are_stable_and_differ_per_schema() {
        // FNV-1a test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let s = Ev::schemas();
        let prints: std::collections::HashSet<_> = s.iter().map(|e| e.fingerprint()).collect();
        assert_eq!(prints.len(), 3);
        let again = fingerprint(s.get(0).unwrap().schema());
        assert_eq!(s.get(0).unwrap().fingerprint(), again);
    }

    #[test]
    fn fingerprints_ignore_annotations_and_keep_every_rule() {
        use serde_json::json;
        let base =
            json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 3}}});
        let annotated = json!({
            "title": "A", "description": "about it", "$comment": "c",
            "type": "object",
            "properties": {"name": {
                "type": "string", "maxLength": 3, "description": "the name",
                "examples": ["abc"], "default": "a", "deprecated": true,
                "readOnly": false, "writeOnly": false
            }}
        });
        assert_eq!(fingerprint(&base), fingerprint(&annotated));
        // A rule that changes changes the fingerprint.
        let longer =
            json!({"type": "object", "properties": {"name": {"type": "string", "maxLength": 4}}});
        assert_ne!(fingerprint(&base), fingerprint(&longer));
        // Names that look like annotations are properties, not annotations: kept.
        for name in ["title", "description", "default", "examples"] {
            let with = json!({"type": "object", "properties": {name: {"type": "string"}}});
            let without = json!({"type": "object", "properties": {}});
            assert_ne!(fingerprint(&with), fingerprint(&without), "{name}");
            let required = json!({"type": "object", "required": [name]});
            assert_ne!(
                fingerprint(&required),
                fingerprint(&json!({"type": "object", "required": []}))
            );
        }
        // Data is kept whole, even where its keys are annotation names.
        assert_ne!(
            fingerprint(&json!({"const": {"description": 1}})),
            fingerprint(&json!({"const": {}}))
        );
        // Inside lists of schemas and definitions, annotations are left out too.
        assert_eq!(
            fingerprint(
                &json!({"anyOf": [{"type": "null"}, {"$ref": "#/$defs/T"}], "$defs": {"T": {"type": "integer"}}})
            ),
            fingerprint(
                &json!({"anyOf": [{"type": "null", "title": "x"}, {"$ref": "#/$defs/T"}], "$defs": {"T": {"type": "integer", "description": "t"}}})
            )
        );
        // The canonical text sorts keys and leaves out nothing else.
        let mut text = String::new();
        canonical(&annotated, Position::Schema, &mut text);
        assert_eq!(
            text,
            r#"{"properties":{"name":{"maxLength":3,"type":"string"}},"type":"object"}"#
        );
    }

    #[test]
    fn contains_name_is_exact() {
        assert!(contains_name(Ev::NAMES, "t:opened"));
        assert!(!contains_name(Ev::NAMES, "t:open"));
        assert!(!contains_name(Ev::NAMES, "t:openedx"));
    }
}
