use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    Created {},
    NameUpdated { name: String },
}

fn main() {}
