use ventyd::prelude::*;

// A name holding the separator: where the event name starts could not be told.
#[event(entity = "user:account")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

#[event(entity = "order", separator = "/")]
#[derive(Debug, Clone)]
pub enum OrderEvent {
    #[event(initial)]
    Placed {},
    #[event(rename = "line/added")]
    LineAdded {},
}

fn main() {}
