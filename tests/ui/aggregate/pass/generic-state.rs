//! `#[derive(Aggregate)]` on a generic struct and on an enum.
use ventyd::prelude::*;

#[event(entity = "counter")]
#[derive(Debug, Clone)]
pub enum CounterEvent {
    #[event(initial)]
    Opened {},
    Added {
        amount: i64,
    },
}

pub trait Unit: Clone + Send + Sync + Default + 'static {}
impl Unit for () {}

#[derive(Aggregate, Debug, Clone, Default)]
#[aggregate(event = CounterEvent)]
pub struct Counter<U>
where
    U: Unit,
{
    pub total: i64,
    pub unit: U,
}

impl<U: Unit> Reducer for Counter<U> {
    fn init(_: &CounterOpened) -> Self {
        Counter::default()
    }
    fn apply(&mut self, event: &CounterEvent) {
        if let CounterEvent::Added { amount } = event {
            self.total += amount;
        }
    }
}

#[derive(Aggregate, Debug, Clone, PartialEq)]
#[aggregate(event = CounterEvent)]
pub enum Light {
    Off,
    On(i64),
}

impl Reducer for Light {
    fn init(_: &CounterOpened) -> Self {
        Light::Off
    }
    fn apply(&mut self, event: &CounterEvent) {
        if let CounterEvent::Added { amount } = event {
            *self = Light::On(*amount);
        }
    }
}

fn main() {
    let counter = Entity::<Counter<()>>::create(CounterOpened {}).unwrap();
    assert_eq!(counter.entity_name(), "counter");
    let light = Entity::<Light>::create(CounterOpened {}).unwrap();
    assert_eq!(*light.state(), Light::Off);
}
