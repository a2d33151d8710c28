use ventyd::prelude::*;

#[event(entity = "user", separator = ".")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
