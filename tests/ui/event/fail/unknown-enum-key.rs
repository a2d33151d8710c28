use ventyd::prelude::*;

#[event(entity = "user", version = 2)]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
