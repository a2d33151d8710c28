use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone, serde::Serialize)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
}

fn main() {}
