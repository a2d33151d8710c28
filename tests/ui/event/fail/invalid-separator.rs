use ventyd::prelude::*;

#[event(entity = "user", separator = "\n")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
