use ventyd::prelude::*;

#[event(entity = "user", entity = "member")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
