use ventyd::prelude::*;

#[event]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
