//! The attribute and key names the macros read, in one place.

/// `#[event(...)]`, on the enum and on its variants.
pub const EVENT: &str = "event";
/// `#[aggregate(...)]`, the helper of `#[derive(Aggregate)]`.
pub const AGGREGATE: &str = "aggregate";
/// `#[mutation]`, on methods of a `#[mutations]` impl.
pub const MUTATION: &str = "mutation";
/// `#[serde(...)]`, read for keys that would change the event wire format.
pub const SERDE: &str = "serde";
/// `#[schemars(...)]`, read like `#[serde(...)]` (schemars accepts the same keys there).
pub const SCHEMARS: &str = "schemars";
/// `#[derive(...)]`.
pub const DERIVE: &str = "derive";
/// `#[doc = "..."]`, copied onto generated items.
pub const DOC: &str = "doc";
/// `#[cfg(...)]`, copied next to everything generated from a method.
pub const CFG: &str = "cfg";
/// `#[deprecated]`, copied onto a generated trait method.
pub const DEPRECATED: &str = "deprecated";

/// `#[event(entity = "...")]`.
pub const ENTITY: &str = "entity";
/// `#[event(separator = "...")]`.
pub const SEPARATOR: &str = "separator";
/// `#[event(initial)]`.
pub const INITIAL: &str = "initial";
/// `#[event(rename = "...")]`.
pub const RENAME: &str = "rename";
/// `#[event(initial, body = Name)]`.
pub const BODY: &str = "body";
/// `crate = "..."`: the path to ventyd, for a facade crate.
pub const CRATE: &str = "crate";
/// `#[aggregate(event = Type)]`.
pub const EVENT_KEY: &str = "event";

/// The separator between the entity name and the event name when none is given.
pub const DEFAULT_SEPARATOR: &str = ":";

/// The traits `#[event]` derives itself, so a user's derive of them would conflict.
pub const GENERATED_DERIVES: &[&str] = &["Serialize", "Deserialize", "JsonSchema"];

/// The derives of an event enum that its generated initial body struct gets too: the standard
/// ones, which mean the same on a struct. Others may exist for enums only (strum's, say).
pub const COPIED_DERIVES: &[&str] = &[
    "Debug",
    "Clone",
    "Copy",
    "PartialEq",
    "Eq",
    "PartialOrd",
    "Ord",
    "Hash",
];
