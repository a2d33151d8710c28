//! Event schemas and the wire format, the schemars way: a JSON snapshot of every event body's
//! schema in `tests/schemas/`, real serialized events validated against those snapshots, broken
//! bodies that name the offending field, the envelope's Ventyd-compatible JSON shape, and the
//! event name table.
//!
//! The snapshots are reviewed like code. After an intended change to an event, regenerate them with
//! `VENTYD_BLESS=1 cargo test --test schema` and read the diff.

mod common;
#[path = "outside/fingerprint/domain.rs"]
mod fingerprint_domain;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use ventyd::prelude::*;
use ventyd::{EntityConfig, Envelope, EventSchema, FixedClock, SequentialIds};

// ---------------------------------------------------------------------------------------------
// A second domain: orders, whose events are newtype variants over nested structs (so the schemas
// have `$defs`), with `Option`, `Vec`, enums as fields, `#[serde(default)]` and every schemars
// constraint ventyd documents. The nested types are `#[ventyd::body]`: no serde or schemars
// dependency, no `ventyd::__private`.

/// How fast an order ships: a unit enum, a string `enum` in the schema.
#[ventyd::body]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Standard,
    Express,
}

/// Who carries a shipment: an enum with data, externally tagged.
#[ventyd::body]
#[derive(Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    Post,
    Courier {
        #[schemars(length(min = 2, max = 40))]
        company: String,
    },
}

#[ventyd::body]
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    #[schemars(length(min = 1, max = 80))]
    pub street: String,
    #[schemars(pattern(r"^[0-9]{5}$"))]
    pub zip: String,
    #[schemars(regex(pattern = r"^[A-Z]{2}$"))]
    pub country: String,
}

#[ventyd::body]
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    #[schemars(regex(pattern = r"^[A-Z]{3}-[0-9]{4}$"))]
    pub sku: String,
    #[schemars(range(min = 1, max = 99))]
    pub quantity: u32,
}

/// The body of `order:placed`, the initial event.
#[ventyd::body]
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    #[schemars(email)]
    pub customer: String,
    #[schemars(length(min = 1, max = 10))]
    pub lines: Vec<Line>,
    pub shipping: Address,
    pub billing: Option<Address>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub note: String,
}

#[ventyd::body]
#[derive(Debug, Clone, PartialEq)]
pub struct Shipment {
    pub carrier: Carrier,
    #[schemars(range(min = 1, max = 20))]
    pub parcels: u8,
    pub tracking: Option<String>,
    #[serde(default)]
    #[schemars(inner(length(min = 1, max = 12)))]
    pub labels: Vec<String>,
}

#[ventyd::event(entity = "order")]
#[derive(Debug, Clone, PartialEq)]
pub enum OrderEvent {
    #[event(initial)]
    Placed(Placement),
    LineAdded(Line),
    Shipped(Shipment),
    #[event(rename = "cancelled")]
    CancelledByCustomer {
        #[schemars(length(min = 3))]
        reason: String,
        #[serde(default)]
        refunded: bool,
    },
    Delivered {},
}

#[derive(Aggregate, Debug, Clone, PartialEq)]
#[aggregate(event = OrderEvent)]
pub struct Order {
    pub lines: usize,
    pub shipped: bool,
    pub closed: bool,
}

impl Reducer for Order {
    fn init(p: &Placement) -> Self {
        Order {
            lines: p.lines.len(),
            shipped: false,
            closed: false,
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed(p) => self.lines = p.lines.len(),
            OrderEvent::LineAdded(_) => self.lines += 1,
            OrderEvent::Shipped(_) => self.shipped = true,
            OrderEvent::CancelledByCustomer { .. } | OrderEvent::Delivered {} => self.closed = true,
        }
    }
}

#[mutations]
impl Order {
    /// Records any event: the tests here are about bodies, not business rules.
    #[mutation]
    pub fn record(&self, event: OrderEvent) -> OrderEvent {
        event
    }
}

fn placement() -> Placement {
    Placement {
        customer: "bob@example.com".into(),
        lines: vec![Line {
            sku: "ABC-0001".into(),
            quantity: 2,
        }],
        shipping: Address {
            street: "1 Main St".into(),
            zip: "12345".into(),
            country: "US".into(),
        },
        billing: None,
        priority: Priority::Express,
        note: String::new(),
    }
}

/// A small enum with another separator, for the name table.
#[ventyd::event(entity = "account", separator = "/")]
#[derive(Debug, Clone, PartialEq)]
pub enum AccountEvent {
    Frozen {},
    #[event(initial)]
    Opened {
        owner: String,
    },
    #[event(rename = "closed")]
    ClosedForGood {},
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

const SNAPSHOT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemas");
const BLESS_HINT: &str = "if the change is intended, run `VENTYD_BLESS=1 cargo test --test schema` \
                          to rewrite the snapshots, and review the diff";

fn blessing() -> bool {
    std::env::var_os("VENTYD_BLESS").is_some_and(|v| v == "1")
}

fn snapshot_path(event_name: &str) -> PathBuf {
    Path::new(SNAPSHOT_DIR).join(format!("{}.json", event_name.replace(':', ".")))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a schema serializes") + "\n"
}

/// Compares `schema` with the snapshot at `path`; with `bless`, writes the snapshot instead (only
/// when it differs, so an unchanged file keeps its time stamp).
fn compare_snapshot(name: &str, schema: &Value, path: &Path, bless: bool) -> Result<(), String> {
    let text = fs::read_to_string(path);
    let committed = text
        .as_ref()
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(t).ok());
    if committed.as_ref() == Some(schema) {
        return Ok(());
    }
    if bless {
        fs::create_dir_all(SNAPSHOT_DIR).expect("create tests/schemas");
        fs::write(path, pretty(schema)).expect("write a snapshot");
        return Ok(());
    }
    match (text, committed) {
        (Err(e), _) => Err(format!(
            "no snapshot of the schema of {name:?} at {} ({e}); run `VENTYD_BLESS=1 cargo test \
             --test schema` to write it, and review it",
            path.display()
        )),
        (Ok(_), None) => Err(format!(
            "the snapshot {} of {name:?} is not JSON; {BLESS_HINT}",
            path.display()
        )),
        (Ok(text), Some(_)) => Err(format!(
            "the schema of {name:?} differs from its snapshot {}; {BLESS_HINT}\n\
             --- committed\n{text}+++ generated\n{}",
            path.display(),
            pretty(schema)
        )),
    }
}

/// Checks (or blesses) the snapshot of every event of `E`, reporting every mismatch at once.
fn check_snapshots<E: Event>() {
    let problems: Vec<String> = E::schemas()
        .iter()
        .filter_map(|s| {
            compare_snapshot(s.name(), s.schema(), &snapshot_path(s.name()), blessing()).err()
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// The schema of one event, after checking that it is the committed snapshot, so what the
/// validation tests below check is the snapshot's behaviour.
fn snapshot_schema<E: Event>(name: &str) -> &'static EventSchema {
    let schema = E::schemas()
        .by_name(name)
        .unwrap_or_else(|| panic!("no schema for {name:?}"));
    if !blessing() {
        let path = snapshot_path(name);
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} ({e}); {BLESS_HINT}", path.display()));
        let committed: Value = serde_json::from_str(&text).expect("a snapshot is JSON");
        assert_eq!(
            &committed,
            schema.schema(),
            "{} is stale; {BLESS_HINT}",
            path.display()
        );
    }
    schema
}

#[test]
fn user_event_schemas_match_their_snapshots() {
    assert_eq!(UserEvent::schemas().iter().count(), UserEvent::NAMES.len());
    check_snapshots::<UserEvent>();
}

#[test]
fn order_event_schemas_match_their_snapshots() {
    assert_eq!(
        OrderEvent::schemas().iter().count(),
        OrderEvent::NAMES.len()
    );
    check_snapshots::<OrderEvent>();
}

#[test]
fn every_snapshot_file_belongs_to_an_event() {
    let known: Vec<PathBuf> = UserEvent::NAMES
        .iter()
        .chain(OrderEvent::NAMES)
        .map(|n| snapshot_path(n))
        .collect();
    if blessing() {
        fs::create_dir_all(SNAPSHOT_DIR).expect("create tests/schemas");
    }
    let mut files: Vec<PathBuf> = fs::read_dir(SNAPSHOT_DIR)
        .expect("tests/schemas exists")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    let stale: Vec<_> = files.iter().filter(|f| !known.contains(f)).collect();
    assert!(
        stale.is_empty(),
        "snapshots of no event (renamed or removed?), delete them: {stale:?}"
    );
    if !blessing() {
        assert_eq!(files.len(), known.len(), "{files:?}");
    }
}

#[test]
fn a_missing_or_different_snapshot_fails_and_says_how_to_bless() {
    let created = UserEvent::schemas().by_name("user:created").unwrap();
    let missing = Path::new(SNAPSHOT_DIR).join("no-such-event.json");
    let err = compare_snapshot("user:created", created.schema(), &missing, false).unwrap_err();
    assert!(err.contains("no snapshot"), "{err}");
    assert!(err.contains("VENTYD_BLESS=1"), "{err}");
    assert!(!missing.exists());

    if blessing() {
        return; // the snapshot compared against below may be being rewritten
    }
    // The schema of one event against the snapshot of another.
    let tagged = UserEvent::schemas().by_name("user:tagged").unwrap();
    let err = compare_snapshot(
        "user:tagged",
        tagged.schema(),
        &snapshot_path("user:created"),
        false,
    )
    .unwrap_err();
    assert!(err.contains("differs"), "{err}");
    assert!(err.contains("VENTYD_BLESS=1"), "{err}");
    assert!(err.contains("--- committed"), "{err}");
}

/// The parts of the snapshots the tests below rely on, spelled out so that a regenerated snapshot
/// that lost a constraint fails here even if it was blessed without review.
#[test]
fn snapshots_have_the_expected_shape() {
    let created = snapshot_schema::<UserEvent>("user:created").schema();
    assert_eq!(created["type"], "object");
    assert_eq!(created["required"], json!(["email"]));
    assert_eq!(created["properties"]["email"]["format"], "email");
    assert_eq!(
        created["properties"]["name"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(created.get("$defs"), None);

    let updated = snapshot_schema::<UserEvent>("user:name_updated").schema();
    assert_eq!(updated["required"], json!(["name"]));
    assert_eq!(updated["properties"]["name"]["minLength"], 1);
    assert_eq!(updated["properties"]["name"]["maxLength"], 100);

    let removed = snapshot_schema::<UserEvent>("user:removed").schema();
    assert_eq!(removed["required"], json!(["reason"]));
    assert_eq!(removed["properties"]["reason"], json!({"type": "string"}));

    let tagged = snapshot_schema::<UserEvent>("user:tagged").schema();
    assert_eq!(tagged["properties"]["tag"]["maxLength"], 3);

    // Newtype variants: the body is a reference into `$defs`, which every body schema carries.
    let placed = snapshot_schema::<OrderEvent>("order:placed").schema();
    assert_eq!(placed["$ref"], "#/$defs/Placement");
    let defs = &placed["$defs"];
    let p = &defs["Placement"];
    assert_eq!(p["type"], "object");
    assert_eq!(p["required"], json!(["customer", "lines", "shipping"]));
    assert_eq!(p["properties"]["customer"]["format"], "email");
    assert_eq!(p["properties"]["lines"]["type"], "array");
    assert_eq!(p["properties"]["lines"]["minItems"], 1);
    assert_eq!(p["properties"]["lines"]["maxItems"], 10);
    assert_eq!(p["properties"]["lines"]["items"]["$ref"], "#/$defs/Line");
    assert_eq!(p["properties"]["priority"]["default"], "standard");
    assert_eq!(p["properties"]["note"]["default"], "");
    assert_eq!(p["properties"]["note"]["maxLength"], 200);
    assert_eq!(defs["Priority"]["enum"], json!(["standard", "express"]));
    assert_eq!(defs["Line"]["required"], json!(["sku", "quantity"]));
    assert_eq!(
        defs["Line"]["properties"]["sku"]["pattern"],
        "^[A-Z]{3}-[0-9]{4}$"
    );
    assert_eq!(defs["Line"]["properties"]["quantity"]["minimum"], 1);
    assert_eq!(defs["Line"]["properties"]["quantity"]["maximum"], 99);
    assert_eq!(
        defs["Address"]["properties"]["zip"]["pattern"],
        "^[0-9]{5}$"
    );
    assert_eq!(
        defs["Address"]["properties"]["country"]["pattern"],
        "^[A-Z]{2}$"
    );

    let line_added = snapshot_schema::<OrderEvent>("order:line_added").schema();
    assert_eq!(line_added["$ref"], "#/$defs/Line");
    let shipped = snapshot_schema::<OrderEvent>("order:shipped").schema();
    assert_eq!(shipped["$ref"], "#/$defs/Shipment");
    let shipment = &shipped["$defs"]["Shipment"];
    assert_eq!(shipment["required"], json!(["carrier", "parcels"]));
    assert_eq!(shipment["properties"]["parcels"]["minimum"], 1);
    assert_eq!(shipment["properties"]["parcels"]["maximum"], 20);
    assert_eq!(shipment["properties"]["labels"]["items"]["maxLength"], 12);

    let cancelled = snapshot_schema::<OrderEvent>("order:cancelled").schema();
    assert_eq!(cancelled["type"], "object");
    assert_eq!(cancelled["required"], json!(["reason"]));
    assert_eq!(cancelled["properties"]["refunded"]["default"], false);

    let delivered = snapshot_schema::<OrderEvent>("order:delivered").schema();
    assert_eq!(delivered["type"], "object");
    assert_eq!(delivered.get("properties"), None);
    assert_eq!(delivered.get("required"), None);
}

// ---------------------------------------------------------------------------------------------
// Real events against the snapshots.

/// The body of every event of an entity, as its envelope serializes it.
fn bodies<A: Reducer>(entity: &Entity<A>) -> Vec<(String, Value)> {
    entity
        .events()
        .map(|e| {
            let mut json = serde_json::to_value(e).expect("an envelope serializes");
            let name = json["eventName"].as_str().expect("eventName").to_owned();
            (name, json["body"].take())
        })
        .collect()
}

fn assert_valid<E: Event>(name: &str, body: &Value) {
    let result = snapshot_schema::<E>(name).validate(body);
    assert_eq!(result, Ok(()), "{name} body {body}");
}

#[test]
fn real_user_events_are_valid_against_their_snapshots() {
    let mut user = Entity::<User>::create(alice()).unwrap();
    user.update_name("Alice Cooper".into()).unwrap();
    user.tag_all(vec!["a".into(), "vip".into()]).unwrap();
    user.delete("asked to".into()).unwrap();
    let named = Entity::<User>::create(UserCreated {
        email: "bob@example.com".into(),
        name: Some("Bob".into()),
    })
    .unwrap();

    let mut all = bodies(&user);
    all.extend(bodies(&named));
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "user:created",
            "user:name_updated",
            "user:tagged",
            "user:tagged",
            "user:removed",
            "user:created"
        ]
    );
    // `None` is left out, not written as `null` (Ventyd's `optional()` rejects `null`).
    assert_eq!(all[0].1, json!({"email": "alice@example.com"}));
    assert_eq!(all[5].1, json!({"email": "bob@example.com", "name": "Bob"}));
    assert_eq!(all[3].1, json!({"tag": "vip"}));
    for (name, body) in &all {
        assert_valid::<UserEvent>(name, body);
    }
}

#[test]
fn real_order_events_are_valid_against_their_snapshots() {
    let mut order = Entity::<Order>::create(placement()).unwrap();
    order
        .record(OrderEvent::LineAdded(Line {
            sku: "XYZ-9999".into(),
            quantity: 99,
        }))
        .unwrap();
    order
        .record(OrderEvent::Shipped(Shipment {
            carrier: Carrier::Courier {
                company: "DHL".into(),
            },
            parcels: 1,
            tracking: Some("1Z999".into()),
            labels: vec!["fragile".into()],
        }))
        .unwrap();
    order
        .record(OrderEvent::Shipped(Shipment {
            carrier: Carrier::Post,
            parcels: 20,
            tracking: None,
            labels: Vec::new(),
        }))
        .unwrap();
    order
        .record(OrderEvent::CancelledByCustomer {
            reason: "too slow".into(),
            refunded: true,
        })
        .unwrap();
    order.record(OrderEvent::Delivered {}).unwrap();
    let mut with_billing = placement();
    with_billing.billing = Some(with_billing.shipping.clone());
    with_billing.note = "leave at the door".into();
    let other = Entity::<Order>::create(with_billing).unwrap();
    assert_eq!(order.state().lines, 2);
    assert!(order.state().shipped && order.state().closed);

    let mut all = bodies(&order);
    all.extend(bodies(&other));
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "order:placed",
            "order:line_added",
            "order:shipped",
            "order:shipped",
            "order:cancelled",
            "order:delivered",
            "order:placed"
        ]
    );
    // A newtype variant's body is the inner struct itself, not wrapped; a `#[ventyd::body]`
    // struct leaves a `None` field out, as an event's own fields do.
    assert_eq!(
        all[0].1,
        json!({
            "customer": "bob@example.com",
            "lines": [{"sku": "ABC-0001", "quantity": 2}],
            "shipping": {"street": "1 Main St", "zip": "12345", "country": "US"},
            "priority": "express",
            "note": ""
        })
    );
    assert_eq!(all[2].1["carrier"], json!({"courier": {"company": "DHL"}}));
    assert_eq!(all[3].1["carrier"], json!("post"));
    assert_eq!(all[5].1, json!({}));
    for (name, body) in &all {
        assert_valid::<OrderEvent>(name, body);
    }
}

#[test]
fn bodies_written_by_another_service_are_valid_too() {
    // What a TypeScript service may write: defaults left out, unknown fields added.
    assert_valid::<OrderEvent>(
        "order:placed",
        &json!({
            "customer": "c@example.com",
            "lines": [{"sku": "ABC-0001", "quantity": 1}],
            "shipping": {"street": "x", "zip": "00000", "country": "FR"}
        }),
    );
    assert_valid::<OrderEvent>("order:cancelled", &json!({"reason": "abc"}));
    assert_valid::<OrderEvent>(
        "order:shipped",
        &json!({"carrier": "post", "parcels": 1, "extra": true}),
    );
    assert_valid::<UserEvent>("user:created", &json!({"email": "a@b.co"}));
}

/// The only violation of `body`, as (pointer, failing keyword).
fn violation<E: Event>(name: &str, body: Value) -> (String, String) {
    let all = violations::<E>(name, body);
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_iter().next().unwrap()
}

/// Every violation of `body`, as (pointer, failing keyword), sorted.
fn violations<E: Event>(name: &str, body: Value) -> Vec<(String, String)> {
    let list = snapshot_schema::<E>(name)
        .validate(&body)
        .expect_err("the body is invalid");
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|v| {
            let keyword = v.schema_path.rsplit('/').next().unwrap_or("").to_owned();
            (v.pointer.clone(), keyword)
        })
        .collect();
    out.sort();
    out
}

fn pair(pointer: &str, keyword: &str) -> (String, String) {
    (pointer.to_owned(), keyword.to_owned())
}

#[test]
fn a_wrong_type_names_the_field() {
    assert_eq!(
        violation::<UserEvent>("user:created", json!({"email": 42})),
        pair("/email", "type")
    );
    assert_eq!(
        violation::<UserEvent>("user:created", json!({"email": "a@b.co", "name": 7})),
        pair("/name", "type")
    );
    assert_eq!(
        violation::<OrderEvent>("order:shipped", json!({"carrier": "post", "parcels": "1"})),
        pair("/parcels", "type")
    );
    assert_eq!(
        violation::<OrderEvent>("order:cancelled", json!("too slow")),
        pair("", "type")
    );
}

#[test]
fn a_missing_required_field_is_named_in_the_message() {
    let list = snapshot_schema::<UserEvent>("user:created")
        .validate(&json!({"name": "A"}))
        .unwrap_err();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].pointer, "");
    assert_eq!(list[0].schema_path, "/required");
    assert!(list[0].message.contains("\"email\""), "{}", list[0].message);

    // Inside a nested struct, the pointer names the struct.
    let mut body = serde_json::to_value(placement()).unwrap();
    body["shipping"].as_object_mut().unwrap().remove("zip");
    let list = snapshot_schema::<OrderEvent>("order:placed")
        .validate(&body)
        .unwrap_err();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].pointer, "/shipping");
    assert!(list[0].schema_path.ends_with("/required"), "{list:?}");
    assert!(list[0].message.contains("\"zip\""), "{}", list[0].message);
}

#[test]
fn a_string_too_short_or_too_long_names_the_field() {
    assert_eq!(
        violation::<UserEvent>("user:name_updated", json!({"name": ""})),
        pair("/name", "minLength")
    );
    assert_eq!(
        violation::<UserEvent>("user:name_updated", json!({"name": "x".repeat(101)})),
        pair("/name", "maxLength")
    );
    assert_eq!(
        violation::<UserEvent>("user:tagged", json!({"tag": "four"})),
        pair("/tag", "maxLength")
    );
    assert_eq!(
        violation::<OrderEvent>("order:cancelled", json!({"reason": "no"})),
        pair("/reason", "minLength")
    );
    // Length is counted in characters, not bytes.
    assert_valid::<UserEvent>("user:tagged", &json!({"tag": "ééé"}));
    // `inner(length(..))` applies to every item of a `Vec`.
    assert_eq!(
        violation::<OrderEvent>(
            "order:shipped",
            json!({"carrier": "post", "parcels": 1, "labels": ["ok", ""]})
        ),
        pair("/labels/1", "minLength")
    );
}

#[test]
fn a_list_too_short_or_too_long_names_the_field() {
    let mut body = serde_json::to_value(placement()).unwrap();
    body["lines"] = json!([]);
    assert_eq!(
        violation::<OrderEvent>("order:placed", body.clone()),
        pair("/lines", "minItems")
    );
    body["lines"] = json!(vec![json!({"sku": "ABC-0001", "quantity": 1}); 11]);
    assert_eq!(
        violation::<OrderEvent>("order:placed", body),
        pair("/lines", "maxItems")
    );
}

#[test]
fn a_number_out_of_range_names_the_field() {
    assert_eq!(
        violation::<OrderEvent>(
            "order:line_added",
            json!({"sku": "ABC-0001", "quantity": 0})
        ),
        pair("/quantity", "minimum")
    );
    assert_eq!(
        violation::<OrderEvent>(
            "order:line_added",
            json!({"sku": "ABC-0001", "quantity": 100})
        ),
        pair("/quantity", "maximum")
    );
    assert_eq!(
        violation::<OrderEvent>("order:shipped", json!({"carrier": "post", "parcels": 21})),
        pair("/parcels", "maximum")
    );
    // Inside an array, the pointer names the item.
    let mut body = serde_json::to_value(placement()).unwrap();
    body["lines"][0]["quantity"] = json!(0);
    assert_eq!(
        violation::<OrderEvent>("order:placed", body),
        pair("/lines/0/quantity", "minimum")
    );
}

#[test]
fn a_bad_email_names_the_field() {
    assert_eq!(
        violation::<UserEvent>("user:created", json!({"email": "not-an-email"})),
        pair("/email", "format")
    );
    let mut body = serde_json::to_value(placement()).unwrap();
    body["customer"] = json!("bob at example.com");
    assert_eq!(
        violation::<OrderEvent>("order:placed", body),
        pair("/customer", "format")
    );
}

#[test]
fn a_bad_pattern_names_the_field() {
    // `#[schemars(regex(pattern = ..))]`
    assert_eq!(
        violation::<OrderEvent>(
            "order:line_added",
            json!({"sku": "abc-0001", "quantity": 1})
        ),
        pair("/sku", "pattern")
    );
    // Patterns are anchored by the `^..$` they are written with, not by the validator.
    assert_eq!(
        violation::<OrderEvent>(
            "order:line_added",
            json!({"sku": "ABC-00012", "quantity": 1})
        ),
        pair("/sku", "pattern")
    );
    // `#[schemars(pattern(..))]`, in a nested struct.
    let mut body = serde_json::to_value(placement()).unwrap();
    body["shipping"]["zip"] = json!("1234");
    assert_eq!(
        violation::<OrderEvent>("order:placed", body.clone()),
        pair("/shipping/zip", "pattern")
    );
    // The same struct behind an `Option`: schemars writes `anyOf: [{$ref}, {type: null}]`, and
    // the violation still names the field inside it and the rule that failed.
    body["shipping"]["zip"] = json!("12345");
    body["billing"] = json!({"street": "x", "zip": "12345", "country": "usa"});
    assert_eq!(
        violation::<OrderEvent>("order:placed", body),
        pair("/billing/country", "pattern")
    );
}

#[test]
fn an_unknown_enum_value_names_the_field() {
    let mut body = serde_json::to_value(placement()).unwrap();
    body["priority"] = json!("urgent");
    assert_eq!(
        violation::<OrderEvent>("order:placed", body),
        pair("/priority", "enum")
    );
    // A data-carrying enum (`oneOf`): as with `Option`, the violation names the failing
    // constraint inside the variant that was given, and a string that is no variant name is
    // reported against the unit variants' `enum`, not as a failed `oneOf`.
    assert_eq!(
        violation::<OrderEvent>(
            "order:shipped",
            json!({"carrier": {"courier": {"company": "X"}}, "parcels": 1})
        ),
        pair("/carrier/courier/company", "minLength")
    );
    assert_eq!(
        violation::<OrderEvent>("order:shipped", json!({"carrier": "plane", "parcels": 1})),
        pair("/carrier", "enum")
    );
}

#[test]
fn every_violation_is_listed_when_several_fields_are_wrong() {
    let body = json!({
        "customer": "nobody",
        "lines": [
            {"sku": "ABC-0001", "quantity": 1},
            {"sku": "bad", "quantity": 0}
        ],
        "shipping": {"street": "", "zip": "1", "country": "US"},
        "billing": {"street": "x", "zip": "12345"},
        "priority": "urgent",
        "note": 5
    });
    assert_eq!(
        violations::<OrderEvent>("order:placed", body),
        [
            pair("/billing", "required"),
            pair("/customer", "format"),
            pair("/lines/1/quantity", "minimum"),
            pair("/lines/1/sku", "pattern"),
            pair("/note", "type"),
            pair("/priority", "enum"),
            pair("/shipping/street", "minLength"),
            pair("/shipping/zip", "pattern"),
        ]
    );

    // The same through the entity: the error lists them all, and names each pointer.
    let mut bad = placement();
    bad.customer = "nobody".into();
    bad.shipping.zip = "1".into();
    bad.lines[0].quantity = 100;
    let err = Entity::<Order>::create(bad).unwrap_err();
    let v = err.as_validation().expect("a validation error");
    assert_eq!(v.event_name, "order:placed");
    let mut pointers: Vec<&str> = v.violations.iter().map(|v| v.pointer.as_str()).collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        ["/customer", "/lines/0/quantity", "/shipping/zip"]
    );
    let message = err.to_string();
    for p in pointers {
        assert!(message.contains(p), "{message}");
    }
}

// ---------------------------------------------------------------------------------------------
// The envelope's JSON shape.

fn deterministic_repo() -> (Repository<User, MemoryStorage>, FixedClock) {
    let clock = FixedClock::new("2026-11-26T04:24:59.000Z".parse().unwrap());
    let repo = Repository::<User, _>::with_config(
        MemoryStorage::new(),
        EntityConfig::default()
            .with_clock(clock.clone())
            .with_ids(SequentialIds::default()),
    );
    (repo, clock)
}

fn to_json<A: Reducer>(entity: &Entity<A>) -> Vec<Value> {
    entity
        .events()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[test]
fn a_queued_envelope_has_ventyd_keys_and_no_position_or_metadata() {
    let (repo, clock) = deterministic_repo();
    let mut user = repo.create(alice()).unwrap();
    clock.advance_millis(7);
    user.update_name("Alice".into()).unwrap();
    assert_eq!(
        to_json(&user),
        [
            json!({
                "eventId": "00000000-0000-7000-8000-000000000002",
                "eventName": "user:created",
                "eventCreatedAt": "2026-11-26T04:24:59.000Z",
                "entityName": "user",
                "entityId": "00000000-0000-7000-8000-000000000001",
                "version": 1,
                "body": {"email": "alice@example.com"},
                "schemaVersion": 1
            }),
            json!({
                "eventId": "00000000-0000-7000-8000-000000000003",
                "eventName": "user:name_updated",
                "eventCreatedAt": "2026-11-26T04:24:59.007Z",
                "entityName": "user",
                "entityId": "00000000-0000-7000-8000-000000000001",
                "version": 2,
                "body": {"name": "Alice"},
                "schemaVersion": 1
            }),
        ]
    );
}

#[test]
fn a_committed_envelope_has_its_position_and_metadata_when_given() {
    rt().block_on(async {
        let (repo, clock) = deterministic_repo();
        let mut user = repo.create(alice()).unwrap();
        repo.commit(&mut user).await.unwrap();
        clock.advance_millis(1_500);
        user.tag_all(vec!["a".into()]).unwrap();
        repo.commit_with(
            &mut user,
            Metadata::new()
                .actor("admin@example.com")
                .correlation_id("req-1")
                .with("ticket", 42),
        )
        .await
        .unwrap();
        // Empty metadata is not written.
        user.delete("spam".into()).unwrap();
        repo.commit_with(&mut user, Metadata::new()).await.unwrap();

        let json = committed_json(&user);
        assert_eq!(
            json,
            [
                json!({
                    "eventId": "00000000-0000-7000-8000-000000000002",
                    "eventName": "user:created",
                    "eventCreatedAt": "2026-11-26T04:24:59.000Z",
                    "entityName": "user",
                    "entityId": "00000000-0000-7000-8000-000000000001",
                    "version": 1,
                    "body": {"email": "alice@example.com"},
                    "position": 1,
                    "schemaVersion": 1
                }),
                json!({
                    "eventId": "00000000-0000-7000-8000-000000000003",
                    "eventName": "user:tagged",
                    "eventCreatedAt": "2026-11-26T04:25:00.500Z",
                    "entityName": "user",
                    "entityId": "00000000-0000-7000-8000-000000000001",
                    "version": 2,
                    "body": {"tag": "a"},
                    "position": 2,
                    "schemaVersion": 1,
                    "metadata": {
                        "actor": "admin@example.com",
                        "correlationId": "req-1",
                        "ticket": 42
                    }
                }),
                json!({
                    "eventId": "00000000-0000-7000-8000-000000000004",
                    "eventName": "user:removed",
                    "eventCreatedAt": "2026-11-26T04:25:00.500Z",
                    "entityName": "user",
                    "entityId": "00000000-0000-7000-8000-000000000001",
                    "version": 3,
                    "body": {"reason": "spam"},
                    "position": 3,
                    "schemaVersion": 1
                }),
            ]
        );

        // The same shape after a reload from the store.
        let loaded = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        assert_eq!(committed_json(&loaded), json);
        let times = |e: &Entity<User>| e.events().map(|e| e.recorded_at()).collect::<Vec<_>>();
        assert_eq!(
            times(&loaded),
            times(&user),
            "the same commit times after a reload"
        );
    });
}

/// The envelopes of a committed entity without `recordedAt`, which is the store's commit time
/// (by the store's clock, not the entity's): checked to be there on every event and to be what
/// the entity was told, then removed so the rest compares exactly.
fn committed_json(entity: &Entity<User>) -> Vec<Value> {
    let mut json = to_json(entity);
    for (value, envelope) in json.iter_mut().zip(entity.events()) {
        let recorded = value
            .as_object_mut()
            .and_then(|o| o.remove("recordedAt"))
            .expect("a committed event has recordedAt");
        assert_eq!(recorded, json!(envelope.recorded_at().unwrap().to_string()));
    }
    json
}

#[test]
fn event_created_at_is_rfc3339_utc_with_milliseconds() {
    let (repo, clock) = deterministic_repo();
    let mut user = repo.create(alice()).unwrap();
    for step in [1, 10, 100, 59_000 + 889] {
        clock.advance_millis(step);
        user.tag_all(vec!["t".into()]).unwrap();
    }
    let times: Vec<String> = to_json(&user)
        .iter()
        .map(|e| e["eventCreatedAt"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        times,
        [
            "2026-11-26T04:24:59.000Z",
            "2026-11-26T04:24:59.001Z",
            "2026-11-26T04:24:59.011Z",
            "2026-11-26T04:24:59.111Z",
            "2026-11-26T04:25:59.000Z",
        ]
    );
}

#[test]
fn an_envelope_round_trips_through_json() {
    rt().block_on(async {
        let (repo, _clock) = deterministic_repo();
        let mut user = repo.create(alice()).unwrap();
        user.update_name("Alice".into()).unwrap();
        let queued: Vec<Envelope<UserEvent>> = user.events().cloned().collect();
        repo.commit_with(&mut user, Metadata::new().reason("import"))
            .await
            .unwrap();
        let committed: Vec<Envelope<UserEvent>> = user.events().cloned().collect();
        assert_eq!(committed[0].position(), Some(1));
        assert_eq!(committed[0].metadata().reason.as_deref(), Some("import"));

        for envelope in queued.iter().chain(&committed) {
            let json = serde_json::to_value(envelope).unwrap();
            let back: Envelope<UserEvent> = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(&back, envelope);
            assert_eq!(serde_json::to_value(&back).unwrap(), json);
            // And through text, as a store or a message broker would carry it.
            let text = serde_json::to_string(envelope).unwrap();
            let back: Envelope<UserEvent> = serde_json::from_str(&text).unwrap();
            assert_eq!(&back, envelope);
        }

        // A newtype variant round-trips too.
        let order = Entity::<Order>::create(placement()).unwrap();
        let envelope = order.events().next().unwrap();
        let json = serde_json::to_value(envelope).unwrap();
        let back: Envelope<OrderEvent> = serde_json::from_value(json).unwrap();
        assert_eq!(&back, envelope);
        assert_eq!(back.event(), &OrderEvent::Placed(placement()));
    });
}

#[test]
fn an_envelope_written_by_ventyd_typescript_reads_with_defaults() {
    // Ventyd writes neither position, schemaVersion nor metadata.
    let json = json!({
        "eventId": "0190a8b4-0000-7000-8000-000000000001",
        "eventName": "user:name_updated",
        "eventCreatedAt": "2026-11-26T04:24:59.123Z",
        "entityName": "user",
        "entityId": "u1",
        "version": 2,
        "body": {"name": "Alice"}
    });
    let e: Envelope<UserEvent> = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(e.event_name(), "user:name_updated");
    assert_eq!(e.entity_id(), "u1");
    assert_eq!(e.version(), 2);
    assert_eq!(e.position(), None);
    assert_eq!(e.schema_version(), 1);
    assert!(e.metadata().is_empty());
    assert_eq!(e.event_created_at().to_string(), "2026-11-26T04:24:59.123Z");
    assert_eq!(
        e.event(),
        &UserEvent::NameUpdated {
            name: "Alice".into()
        }
    );
    // Written back, it gains only schemaVersion.
    let mut expected = json;
    expected["schemaVersion"] = json!(1);
    assert_eq!(serde_json::to_value(&e).unwrap(), expected);
}

fn good_envelope() -> Value {
    json!({
        "eventId": "00000000-0000-7000-8000-000000000002",
        "eventName": "user:created",
        "eventCreatedAt": "2026-11-26T04:24:59.000Z",
        "entityName": "user",
        "entityId": "u1",
        "version": 1,
        "body": {"email": "alice@example.com", "name": null},
        "schemaVersion": 1
    })
}

fn decode_error(json: Value) -> String {
    serde_json::from_value::<Envelope<UserEvent>>(json)
        .expect_err("the envelope is invalid")
        .to_string()
}

#[test]
fn an_envelope_of_another_entity_is_rejected() {
    let mut json = good_envelope();
    json["entityName"] = json!("order");
    let err = decode_error(json);
    assert!(err.contains("entityName \"order\""), "{err}");
    assert!(err.contains("\"user\""), "{err}");
}

#[test]
fn an_envelope_with_an_unknown_event_name_is_rejected() {
    let mut json = good_envelope();
    json["eventName"] = json!("user:deleted");
    let err = decode_error(json);
    assert!(err.contains("unknown eventName \"user:deleted\""), "{err}");
    assert!(err.contains("at version 1 of user \"u1\""), "{err}");
    assert!(
        err.contains("user:created, user:name_updated, user:removed, user:tagged"),
        "{err}"
    );
}

#[test]
fn an_envelope_with_a_body_of_the_wrong_shape_is_rejected() {
    let mut json = good_envelope();
    // An envelope from JSON is checked against its event's schema before it is decoded.
    json["body"] = json!({"email": 42});
    let err = decode_error(json.clone());
    assert!(err.contains("fails its schema"), "{err}");
    // Every refusal names the event, its version and its entity.
    assert!(
        err.contains(r#"the envelope of "user:created" at version 1 of user "u1""#),
        "{err}"
    );
    assert!(
        err.contains("at /email: 42 is not of type \"string\""),
        "{err}"
    );

    json["body"] = json!({"name": "Alice"});
    let err = decode_error(json.clone());
    assert!(err.contains("\"email\" is a required property"), "{err}");

    json["body"] = json!("alice@example.com");
    let err = decode_error(json.clone());
    assert!(err.contains("is not of type \"object\""), "{err}");

    json["body"] = json!({"email": "not an email"});
    let err = decode_error(json.clone());
    assert!(err.contains("at /email"), "{err}");

    // A body that fits another event is still the wrong shape for this one.
    json["eventName"] = json!("user:tagged");
    json["body"] = json!({"email": "alice@example.com"});
    let err = decode_error(json);
    assert!(err.contains("\"tag\" is a required property"), "{err}");
}

#[test]
fn an_envelope_with_missing_or_malformed_fields_is_rejected() {
    let mut json = good_envelope();
    json.as_object_mut().unwrap().remove("body");
    let err = decode_error(json);
    assert!(err.contains("missing field `body`"), "{err}");

    let mut json = good_envelope();
    json["eventCreatedAt"] = json!("yesterday");
    let err = decode_error(json);
    assert!(
        err.contains("invalid RFC 3339 timestamp \"yesterday\""),
        "{err}"
    );

    // Any non-empty text is an event id (Ventyd's generateId may make any); empty text and
    // other JSON types are not.
    let mut json = good_envelope();
    json["eventId"] = json!("");
    let err = decode_error(json);
    assert!(err.contains("an event id must not be empty"), "{err}");
    let mut json = good_envelope();
    json["eventId"] = json!(7);
    let err = decode_error(json);
    assert!(err.contains("an event id (non-empty text)"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The name table.

fn user_samples() -> [UserEvent; 4] {
    [
        UserEvent::Created {
            email: "a@b.co".into(),
            name: None,
        },
        UserEvent::NameUpdated { name: "A".into() },
        UserEvent::Deleted { reason: "r".into() },
        UserEvent::Tagged { tag: "t".into() },
    ]
}

fn order_samples() -> [OrderEvent; 5] {
    [
        OrderEvent::Placed(placement()),
        OrderEvent::LineAdded(placement().lines[0].clone()),
        OrderEvent::Shipped(Shipment {
            carrier: Carrier::Post,
            parcels: 1,
            tracking: None,
            labels: Vec::new(),
        }),
        OrderEvent::CancelledByCustomer {
            reason: "why".into(),
            refunded: false,
        },
        OrderEvent::Delivered {},
    ]
}

/// `event_name`, `variant_index`, `name_index`, the wire name and the schema table agree.
fn assert_table_agrees<E: Event>(samples: &[E]) {
    assert_eq!(samples.len(), E::NAMES.len());
    for (i, event) in samples.iter().enumerate() {
        assert_eq!(event.variant_index(), i);
        assert_eq!(event.event_name(), E::NAMES[i]);
        assert_eq!(E::name_index(event.event_name()), Some(i));
        let wire = serde_json::to_value(event).unwrap();
        assert_eq!(wire["eventName"], E::NAMES[i]);
        assert_eq!(E::schemas().get(i).unwrap().name(), E::NAMES[i]);
    }
    assert!(E::schemas().get(E::NAMES.len()).is_none());
    let names: Vec<&str> = E::schemas().iter().map(EventSchema::name).collect();
    assert_eq!(names, E::NAMES);
}

#[test]
fn the_user_name_table() {
    assert_eq!(UserEvent::ENTITY_NAME, "user");
    assert_eq!(UserEvent::SEPARATOR, ":");
    assert_eq!(
        UserEvent::NAMES,
        [
            "user:created",
            "user:name_updated",
            "user:removed",
            "user:tagged"
        ]
    );
    assert_eq!(UserEvent::INITIAL_NAME, "user:created");
    assert_eq!(UserEvent::name_index("user:created"), Some(0));
    assert_eq!(UserEvent::name_index("user:name_updated"), Some(1));
    assert_eq!(UserEvent::name_index("user:removed"), Some(2));
    assert_eq!(UserEvent::name_index("user:tagged"), Some(3));
    for near_miss in [
        "user:deleted",     // the variant's name before `rename`
        "user:nameUpdated", // camelCase
        "user:NameUpdated", // the Rust variant
        "User:created",     // case matters
        "user:created ",    // no trimming
        "user/created",     // another separator
        "user:",            // the prefix alone
        "user",             // the entity alone
        "created",          // no entity
        "order:placed",     // another entity's event
        "",
    ] {
        assert_eq!(UserEvent::name_index(near_miss), None, "{near_miss:?}");
    }
    assert_table_agrees(&user_samples());
}

#[test]
fn the_order_name_table() {
    assert_eq!(OrderEvent::ENTITY_NAME, "order");
    assert_eq!(OrderEvent::SEPARATOR, ":");
    assert_eq!(
        OrderEvent::NAMES,
        [
            "order:placed",
            "order:line_added",
            "order:shipped",
            "order:cancelled",
            "order:delivered"
        ]
    );
    assert_eq!(OrderEvent::INITIAL_NAME, "order:placed");
    assert_eq!(OrderEvent::name_index("order:cancelled"), Some(3));
    assert_eq!(OrderEvent::name_index("order:cancelled_by_customer"), None);
    assert_eq!(OrderEvent::name_index("order:lineadded"), None);
    assert_table_agrees(&order_samples());
}

#[test]
fn the_name_table_with_another_separator_and_a_later_initial_event() {
    assert_eq!(AccountEvent::ENTITY_NAME, "account");
    assert_eq!(AccountEvent::SEPARATOR, "/");
    assert_eq!(
        AccountEvent::NAMES,
        ["account/frozen", "account/opened", "account/closed"]
    );
    // The initial event need not be the first variant.
    assert_eq!(AccountEvent::INITIAL_NAME, "account/opened");
    assert_eq!(AccountEvent::name_index("account/opened"), Some(1));
    assert_eq!(AccountEvent::name_index("account:opened"), None);
    assert_eq!(AccountEvent::name_index("account/closed_for_good"), None);
    assert_table_agrees(&[
        AccountEvent::Frozen {},
        AccountEvent::Opened {
            owner: "Ada".into(),
        },
        AccountEvent::ClosedForGood {},
    ]);
    let opened: AccountEvent = AccountOpened {
        owner: "Ada".into(),
    }
    .into();
    assert_eq!(opened.event_name(), "account/opened");
}

#[test]
fn fingerprints_move_with_the_rules_only() {
    fingerprint_domain::check();
}
