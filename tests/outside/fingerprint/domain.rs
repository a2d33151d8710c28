//! One event enum written twice, with and without doc comments and schema annotations, and the
//! fingerprints its schemas must have. Shared by `tests/schema.rs` and by the crate in this
//! folder, which builds it with `serde_json/preserve_order` on: a fingerprint is the record that
//! a stored body passed its schema, so it must not move with a doc comment or a map's key order.

/// Documented, with a title and examples.
pub mod documented {
    use ventyd::prelude::*;

    /// A parcel's life.
    #[event(entity = "parcel")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum ParcelEvent {
        /// The parcel was registered.
        #[event(initial)]
        Registered {
            /// Where it goes.
            #[schemars(length(min = 1, max = 80), title = "Destination", example = &"Oslo")]
            destination: String,
            /// How heavy it is, in grams.
            #[schemars(range(min = 1))]
            grams: u32,
            /// An optional note.
            note: Option<String>,
        },
        /// The parcel was delivered.
        Delivered {
            /// Who signed.
            signed_by: String,
        },
    }
}

/// The same rules, no words.
pub mod plain {
    use ventyd::prelude::*;

    #[event(entity = "parcel")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum ParcelEvent {
        #[event(initial)]
        Registered {
            #[schemars(length(min = 1, max = 80))]
            destination: String,
            #[schemars(range(min = 1))]
            grams: u32,
            note: Option<String>,
        },
        Delivered {
            signed_by: String,
        },
    }
}

/// The fingerprints of `parcel:registered` and `parcel:delivered`. They change only when the
/// rules change; if a change to ventyd moves them, every stored body is checked again once on
/// load, and this constant must be updated on purpose.
pub const GOLDEN: [(&str, u64); 2] = [
    ("parcel:registered", 0xe001_ef9e_754e_e73b),
    ("parcel:delivered", 0xd9ac_8a62_604b_b39b),
];

/// Checks both enums against [`GOLDEN`].
pub fn check() {
    use ventyd::Event;
    for (name, golden) in GOLDEN {
        let documented = documented::ParcelEvent::schemas()
            .by_name(name)
            .unwrap()
            .fingerprint();
        let plain = plain::ParcelEvent::schemas()
            .by_name(name)
            .unwrap()
            .fingerprint();
        assert_eq!(
            documented, plain,
            "{name}: doc comments and annotations changed the fingerprint"
        );
        assert_eq!(
            plain, golden,
            "{name}: the fingerprint is {plain:#018x}, not the golden {golden:#018x}"
        );
    }
}
