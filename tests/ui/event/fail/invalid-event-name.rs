use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
    #[event(rename = "name updated")]
    NameUpdated { name: String },
}

fn main() {}
