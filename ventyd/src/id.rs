//! Pluggable generation of entity and event ids.

use uuid::Uuid;

/// Makes new entity ids and event ids. The default, [`UuidV7`], makes ids that sort by time.
pub trait IdGenerator: Send + Sync + 'static {
    /// A new entity id.
    fn entity_id(&self) -> String {
        self.event_id().to_string()
    }

    /// A new event id.
    fn event_id(&self) -> Uuid;
}

/// UUID version 7 ids (time-ordered), the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn event_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Repeatable ids for tests: `00000000-0000-7000-8000-000000000001`, then `...02`, and so on.
///
/// ```
/// use ventyd::{IdGenerator, SequentialIds};
///
/// let ids = SequentialIds::default();
/// assert_eq!(ids.event_id().to_string(), "00000000-0000-7000-8000-000000000001");
/// assert_eq!(ids.entity_id(), "00000000-0000-7000-8000-000000000002");
/// ```
#[derive(Debug, Default)]
pub struct SequentialIds(std::sync::atomic::AtomicU64);

impl IdGenerator for SequentialIds {
    fn event_id(&self) -> Uuid {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0000 | u128::from(n))
    }
}
