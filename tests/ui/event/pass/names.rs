//! Event names: snake case of the variant, `rename`, a custom separator, and the wire format.
use ventyd::prelude::*;

#[event(entity = "http-client", separator = "::")]
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    #[event(initial)]
    Configured {
        base_url: String,
    },
    HTTPCallMade {
        status: u16,
    },
    V2Migrated {},
    #[event(rename = "gone")]
    Removed {
        reason: String,
    },
}

const GONE: &str = ventyd::event_name!(ClientEvent, "http-client::gone");

fn main() {
    assert_eq!(ClientEvent::ENTITY_NAME, "http-client");
    assert_eq!(ClientEvent::SEPARATOR, "::");
    assert_eq!(
        ClientEvent::NAMES,
        [
            "http-client::configured",
            "http-client::http_call_made",
            "http-client::v2_migrated",
            "http-client::gone",
        ]
    );
    assert_eq!(ClientEvent::INITIAL_NAME, "http-client::configured");
    assert_eq!(GONE, "http-client::gone");

    let removed = ClientEvent::Removed {
        reason: "retired".into(),
    };
    assert_eq!(removed.event_name(), "http-client::gone");
    assert_eq!(removed.variant_index(), 3);
    assert_eq!(
        ClientEvent::name_index("http-client::http_call_made"),
        Some(1)
    );
    assert_eq!(ClientEvent::name_index("http-client::removed"), None);

    // The wire name is the declared name: serde writes what `NAMES` says.
    let json = serde_json::to_value(&removed).unwrap();
    assert_eq!(
        json,
        serde_json::json!({ "eventName": "http-client::gone", "body": { "reason": "retired" } })
    );
    let back: ClientEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, removed);

    // The generated body of the initial event converts into the event.
    let configured = ClientConfigured {
        base_url: "https://example.com".into(),
    };
    assert_eq!(
        ClientEvent::from(configured.clone()),
        ClientEvent::Configured {
            base_url: "https://example.com".into()
        }
    );
    assert_eq!(
        format!("{configured:?}"),
        r#"ClientConfigured { base_url: "https://example.com" }"#
    );
}
