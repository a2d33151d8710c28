use ventyd::{Event, EventSchemas};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ventyd::__private::schemars::JsonSchema)]
#[schemars(crate = "ventyd::__private::schemars")]
pub enum Handmade {
    Created,
}

impl Event for Handmade {
    type Initial = Handmade;
    const ENTITY_NAME: &'static str = "handmade";
    const SEPARATOR: &'static str = ":";
    const NAMES: &'static [&'static str] = &["handmade:created"];
    const INITIAL_NAME: &'static str = "handmade:created";

    fn event_name(&self) -> &'static str {
        "handmade:created"
    }

    fn variant_index(&self) -> usize {
        0
    }

    fn name_index(name: &str) -> Option<usize> {
        (name == "handmade:created").then_some(0)
    }

    fn schemas() -> &'static EventSchemas {
        unimplemented!()
    }
}

fn main() {}
