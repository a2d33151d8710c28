// Every mistake is reported in one compile, each on its own token.
use ventyd::prelude::*;

#[event(entity = "user", separator = "")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(intial)]
    Created {},
    Deleted,
    #[event(rename = "created")]
    Recreated {},
}

fn main() {}
