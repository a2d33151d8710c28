use ventyd::prelude::*;

#[event(entity = "user account")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
