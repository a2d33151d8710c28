//! Pluggable generation of entity and event ids.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::event_id::EventId;

/// Makes new entity ids and event ids. The default, [`UuidV7`], makes ids that sort by time.
///
/// An event id may be any non-empty text ([`EventId`]), as Ventyd's `generateId` may return any
/// string; ids that are UUIDs in their lowercase hyphenated form cost the least to store and
/// compare.
pub trait IdGenerator: Send + Sync + 'static {
    /// A new entity id.
    fn entity_id(&self) -> String {
        self.event_id().to_string()
    }

    /// A new event id, never one made before.
    fn event_id(&self) -> EventId;
}

/// UUID version 7 ids (RFC 9562), the default: they sort by creation time, and ids made in one
/// process sort in the order they were made.
///
/// The 48-bit millisecond timestamp is followed by a 12-bit counter (RFC 9562's "fixed bit-length
/// dedicated counter", method 1) that orders ids within a millisecond, and 62 random bits from a
/// per-thread generator seeded by the operating system. Making an id takes no system call and no
/// lock, which matters because every dispatched event needs one.
///
/// ```
/// use ventyd::{IdGenerator, UuidV7};
///
/// let a = UuidV7.uuid();
/// let b = UuidV7.uuid();
/// assert_eq!(a.get_version_num(), 7);
/// assert!(a < b);
/// // As an event id, in the text ventyd writes.
/// let id = UuidV7.event_id();
/// assert_eq!(id.as_uuid().map(|u| u.get_version_num()), Some(7));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidV7;

/// `(unix milliseconds << 12) | counter` of the last id made in this process.
static LAST: AtomicU64 = AtomicU64::new(0);

impl UuidV7 {
    /// The timestamp and counter of the next id: the clock's millisecond with counter 0, or, when
    /// the clock has not moved past the last id (same millisecond, or the clock went back), one
    /// more than the last id, which carries into the timestamp when the counter overflows.
    fn next_timestamp() -> u64 {
        let now = crate::time::Timestamp::now().as_millis().max(0) as u64 & ((1 << 48) - 1);
        let mut last = LAST.load(Ordering::Relaxed);
        loop {
            let next = if now > last >> 12 {
                now << 12
            } else {
                last + 1
            };
            match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

/// A seed from the operating system's randomness, through std's hash keys (no extra crate).
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::time::Timestamp::now().as_millis() as u64);
    h.finish()
}

/// SplitMix64 (Steele, Lea and Flood, 2014): fast, and every seed gives a full-period stream.
pub(crate) fn random_u64() -> u64 {
    RNG.with(|state| {
        let s = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

impl UuidV7 {
    /// A new UUID v7, later than every one this process made before.
    pub fn uuid(&self) -> Uuid {
        let ts_counter = u128::from(Self::next_timestamp());
        let ms = ts_counter >> 12;
        let counter = ts_counter & 0xFFF;
        let random = u128::from(random_u64() & 0x3FFF_FFFF_FFFF_FFFF);
        Uuid::from_u128((ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | random)
    }
}

impl IdGenerator for UuidV7 {
    fn event_id(&self) -> EventId {
        EventId::from(self.uuid())
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
    fn event_id(&self) -> EventId {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        EventId::from(Uuid::from_u128(
            0x0000_0000_0000_7000_8000_0000_0000_0000 | u128::from(n),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_ids_have_version_variant_time_and_order() {
        let before = crate::time::Timestamp::now().as_millis() as u128;
        let ids: Vec<Uuid> = (0..10_000).map(|_| UuidV7.uuid()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
        let ms = ids[0].as_u128() >> 80;
        assert!(ms >= before && ms <= before + 60_000, "{ms} vs {before}");
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn ids_from_many_threads_are_unique() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..5_000).map(|_| UuidV7.uuid()).collect::<Vec<_>>()))
            .collect();
        let mut all = std::collections::HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(all.insert(id));
            }
        }
        assert_eq!(all.len(), 20_000);
    }
}
