//! A newtype initial variant: its own type is the body `Entity::create` takes.
use ventyd::prelude::*;

/// The body of the initial event, written by hand. It needs the serde and schemars derives that
/// `#[event]` gives generated bodies (here through ventyd's own copies of the crates).
#[derive(
    Debug,
    Clone,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    ventyd::__private::schemars::JsonSchema,
)]
#[serde(crate = "ventyd::__private::serde")]
#[schemars(crate = "ventyd::__private::schemars")]
pub struct Signup {
    pub email: String,
}

#[event(entity = "member")]
#[derive(Debug, Clone, PartialEq)]
pub enum MemberEvent {
    #[event(initial)]
    SignedUp(Signup),
    Left {},
}

#[derive(Aggregate, Debug, Clone)]
#[aggregate(event = MemberEvent)]
pub struct Member {
    pub email: String,
    pub active: bool,
}

impl Reducer for Member {
    fn init(signup: &Signup) -> Self {
        Member {
            email: signup.email.clone(),
            active: true,
        }
    }
    fn apply(&mut self, event: &MemberEvent) {
        match event {
            MemberEvent::SignedUp(signup) => self.email = signup.email.clone(),
            MemberEvent::Left {} => self.active = false,
        }
    }
}

fn assert_initial<E: Event<Initial = Signup>>() {}

fn main() {
    assert_initial::<MemberEvent>();
    let signup = Signup {
        email: "ada@example.com".into(),
    };
    assert_eq!(
        MemberEvent::from(signup.clone()),
        MemberEvent::SignedUp(signup.clone())
    );
    let member = Entity::<Member>::create(signup).unwrap();
    assert_eq!(member.state().email, "ada@example.com");
    assert_eq!(
        member.queued_events().next().unwrap().event_name(),
        "member:signed_up"
    );
}
