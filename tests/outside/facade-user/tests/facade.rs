//! Every macro, used through a facade, from a crate without a dependency on ventyd.

use ventyd_facade::ventyd::prelude::*;
use ventyd_facade::ventyd::{self, MutationError};

/// A type inside an event body.
#[body(crate = "ventyd_facade::ventyd")]
#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    pub city: String,
    pub zip: Option<String>,
}

#[event(entity = "customer", crate = "ventyd_facade::ventyd")]
#[derive(Debug, Clone, PartialEq)]
pub enum CustomerEvent {
    #[event(initial)]
    Registered {
        name: String,
        address: Address,
    },
    Moved(Address),
}

#[derive(Aggregate, Debug, Clone, PartialEq)]
#[aggregate(event = CustomerEvent, crate = "ventyd_facade::ventyd")]
pub struct Customer {
    pub name: String,
    pub city: String,
}

impl Reducer for Customer {
    fn init(registered: &CustomerRegistered) -> Self {
        Customer {
            name: registered.name.clone(),
            city: registered.address.city.clone(),
        }
    }

    fn apply(&mut self, event: &CustomerEvent) {
        match event {
            CustomerEvent::Registered { .. } => {}
            CustomerEvent::Moved(address) => self.city = address.city.clone(),
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum CustomerError {
    SameCity,
}

#[mutations(crate = "ventyd_facade::ventyd")]
impl Customer {
    /// Moves the customer.
    #[mutation]
    pub fn move_to(&self, address: Address) -> Result<CustomerEvent, CustomerError> {
        if address.city == self.city {
            return Err(CustomerError::SameCity);
        }
        Ok(CustomerEvent::Moved(address))
    }

    /// Moves twice, dispatching.
    #[mutation]
    pub fn move_twice(
        d: &mut Dispatch<Self>,
        first: Address,
        second: Address,
    ) -> Result<(), ventyd::Error> {
        d.dispatch(CustomerEvent::Moved(first))?;
        d.dispatch(CustomerEvent::Moved(second))
    }
}

fn oslo() -> Address {
    Address {
        city: "Oslo".into(),
        zip: None,
    }
}

#[test]
fn every_macro_works_through_a_facade() {
    let mut customer = Entity::<Customer>::create(CustomerRegistered {
        name: "Ada".into(),
        address: oslo(),
    })
    .unwrap();
    assert!(matches!(
        customer.move_to(oslo()),
        Err(MutationError::Rejected(CustomerError::SameCity))
    ));
    customer
        .move_to(Address {
            city: "Bergen".into(),
            zip: Some("5003".into()),
        })
        .unwrap();
    customer
        .move_twice(
            oslo(),
            Address {
                city: "Tromsø".into(),
                zip: None,
            },
        )
        .unwrap();
    assert_eq!(customer.state().city, "Tromsø");
    assert_eq!(customer.version(), 4);
    let names: Vec<_> = customer.events().map(|e| e.event_name()).collect();
    assert_eq!(
        names,
        [
            "customer:registered",
            "customer:moved",
            "customer:moved",
            "customer:moved"
        ]
    );
    // The `#[body]` rule reaches through the facade too: `None` is left out.
    let body = ventyd::__private::serde_json::to_value(customer.events().next().unwrap()).unwrap()
        ["body"]
        .clone();
    assert_eq!(
        body["address"],
        ventyd::__private::serde_json::json!({"city": "Oslo"})
    );
    CustomerEvent::schemas().check().unwrap();
}
