use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
    #[event(body = NameUpdate)]
    NameUpdated { name: String },
}

fn main() {}
