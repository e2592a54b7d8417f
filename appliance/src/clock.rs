//! The appliance's clock: one monotonic origin shared by all threads, read once per burst.

use natgw_allocator::Timestamp;
use std::time::Instant;

/// A monotonic clock giving [`Timestamp`]s since the appliance started.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.origin.elapsed().as_nanos() as u64)
    }
}
