use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
#[serde(tag = "type")]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
