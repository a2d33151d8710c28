use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {},
    NameUpdated {
        name: String,
    },
    #[event(rename = "name_updated")]
    Renamed {
        name: String,
    },
}

fn main() {}
