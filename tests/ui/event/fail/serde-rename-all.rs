use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub enum UserEvent {
    #[event(initial)]
    Created {},
    NameUpdated {
        name: String,
    },
}

fn main() {}
