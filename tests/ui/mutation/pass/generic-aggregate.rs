//! Mutations of a generic aggregate: the generated trait takes the impl's generics.
use std::fmt::Debug;

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

pub trait Unit: Debug + Clone + Default + Send + Sync + 'static {
    const NAME: &'static str;
}

#[derive(Debug, Clone, Default)]
pub struct Meters;

impl Unit for Meters {
    const NAME: &'static str = "m";
}

#[derive(Aggregate, Debug, Clone, Default)]
#[aggregate(event = CounterEvent)]
pub struct Counter<U: Unit> {
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

#[mutations]
impl<U> Counter<U>
where
    U: Unit,
{
    /// Adds an amount, in this counter's unit.
    #[mutation]
    pub fn add(&self, amount: i64, unit: &str) -> Option<CounterEvent> {
        (unit == U::NAME).then_some(CounterEvent::Added { amount })
    }

    #[mutation]
    fn add_twice(d: &mut Dispatch<Self>, amount: i64) -> Result<i64, ventyd::Error> {
        d.dispatch(CounterEvent::Added { amount })?;
        d.dispatch(CounterEvent::Added { amount })?;
        Ok(d.state().total)
    }
}

fn main() -> Result<(), ventyd::Error> {
    let mut counter = Entity::<Counter<Meters>>::create(CounterOpened {})?;
    counter.add(2, "m")?;
    counter.add(100, "ft")?;
    assert_eq!(counter.add_twice(3)?, 8);
    Ok(())
}
