//! Virtual time for the sans-IO allocator.
//!
//! Layer: allocator, shared by fast and slow path. The crate never reads a clock: callers pass a
//! [`Timestamp`] (nanoseconds on a monotonic clock with an arbitrary epoch) into every call that
//! depends on time. Invariant: arithmetic saturates, it never wraps or panics.

use std::time::Duration;

/// A point on a monotonic clock, in nanoseconds since an arbitrary epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The timestamp `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// The timestamp `millis` milliseconds after the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// The timestamp `secs` seconds after the epoch (saturating).
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// This timestamp plus `d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(add))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_and_saturation() {
        assert_eq!(Timestamp::from_secs(2).as_nanos(), 2_000_000_000);
        assert_eq!(Timestamp::from_millis(3).as_nanos(), 3_000_000);
        assert_eq!(Timestamp::from_secs(u64::MAX).as_nanos(), u64::MAX);
        let t = Timestamp::from_secs(1).saturating_add(Duration::from_millis(500));
        assert_eq!(t.as_nanos(), 1_500_000_000);
        assert_eq!(
            Timestamp::from_nanos(u64::MAX - 1).saturating_add(Duration::MAX),
            Timestamp::from_nanos(u64::MAX)
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(
            Timestamp::from_secs(1).saturating_duration_since(t),
            Duration::ZERO
        );
    }
}
