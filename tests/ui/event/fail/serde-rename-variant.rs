use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
    #[serde(rename = "user:renamed")]
    NameUpdated { name: String },
}

fn main() {}
