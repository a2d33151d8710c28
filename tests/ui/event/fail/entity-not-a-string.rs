use ventyd::prelude::*;

#[event(entity = user)]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
