//! The zero-loss search: the highest offered rate whose loss stays within a threshold.
//!
//! Layer: test harness, slow path, pure logic over a measuring closure (so it is tested without a
//! network). Method: first one run at the sender's maximum rate (no rate limit). If its loss is within the
//! threshold, the forwarder kept up with the sender: the answer is that run, flagged `sender_bound` (the
//! true zero-loss rate is at least that). Otherwise a bisection on the offered rate starts just below the
//! rate forwarded at overload (a forwarder rarely does better without loss than under overload), and
//! keeps the best run that passed. Each probe is a separate short run; the loss of a run is counted
//! after the pipeline drained, so packets in flight at the end are not counted as lost.

use serde::Serialize;

/// One measured run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    /// The rate asked of the sender (None: as fast as it can).
    pub requested_pps: Option<u64>,
    /// Packets the sender put on its veth (sent plus dropped at the veth).
    pub sent: u64,
    /// Packets that reached the inet side's veth.
    pub received: u64,
    /// How long the sender sent, in seconds.
    pub seconds: f64,
    /// `sent / seconds`.
    pub offered_pps: f64,
    /// `received / seconds`.
    pub forwarded_pps: f64,
    /// `1 - received / sent`, at least 0.
    pub loss: f64,
}

impl Step {
    /// A step from raw counts (loss and rates derived; zero seconds or zero sent give zero rates/loss).
    pub fn from_counts(requested_pps: Option<u64>, sent: u64, received: u64, seconds: f64) -> Step {
        let rate = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let loss = if sent == 0 {
            0.0
        } else {
            (1.0 - received as f64 / sent as f64).max(0.0)
        };
        Step {
            requested_pps,
            sent,
            received,
            seconds,
            offered_pps: rate(sent),
            forwarded_pps: rate(received),
            loss,
        }
    }
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchOutcome {
    /// The run at the sender's maximum rate.
    pub at_max: Step,
    /// The best run within the loss threshold (None: even the lowest probe lost too much).
    pub zero_loss: Option<Step>,
    /// True when the run at the maximum rate already passed: the sender, not the forwarder, was the limit.
    pub sender_bound: bool,
    /// Every run, in order.
    pub steps: Vec<Step>,
}

impl SearchOutcome {
    /// Packets per second forwarded at zero loss (0 when no probe passed).
    pub fn zero_loss_pps(&self) -> f64 {
        self.zero_loss.map_or(0.0, |s| s.forwarded_pps)
    }
}

/// Runs the search: `measure(None)` once at full speed, then at most `probes` rate-limited runs.
/// Stops early once the bracket is within 2 % or when `measure` fails (the error is returned).
pub fn search<E>(
    probes: usize,
    max_loss: f64,
    mut measure: impl FnMut(Option<u64>) -> Result<Step, E>,
) -> Result<SearchOutcome, E> {
    let at_max = measure(None)?;
    let mut steps = vec![at_max];
    if at_max.loss <= max_loss {
        return Ok(SearchOutcome {
            at_max,
            zero_loss: Some(at_max),
            sender_bound: true,
            steps,
        });
    }
    let mut lo = 0.0f64;
    let mut hi = at_max.offered_pps.max(1.0);
    let mut probe = (at_max.forwarded_pps * 0.98).clamp(1.0, hi);
    let mut best: Option<Step> = None;
    for _ in 0..probes {
        let step = measure(Some(probe.round().max(1.0) as u64))?;
        steps.push(step);
        if step.loss <= max_loss {
            lo = probe;
            if best.is_none_or(|b| step.forwarded_pps > b.forwarded_pps) {
                best = Some(step);
            }
        } else {
            hi = probe;
        }
        if hi - lo <= 0.02 * hi {
            break;
        }
        probe = (lo + hi) / 2.0;
    }
    Ok(SearchOutcome {
        at_max,
        zero_loss: best,
        sender_bound: false,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forwarder that loses nothing up to `capacity` pps and everything above it; a sender of `max` pps.
    fn fake(capacity: f64, max: f64) -> impl FnMut(Option<u64>) -> Result<Step, ()> {
        move |rate| {
            let offered = rate.map_or(max, |r| (r as f64).min(max));
            let forwarded = offered.min(capacity);
            Ok(Step::from_counts(
                rate,
                offered as u64,
                forwarded as u64,
                1.0,
            ))
        }
    }

    #[test]
    fn sender_bound_when_nothing_is_lost() {
        let r = search(5, 0.001, fake(1e6, 300_000.0)).unwrap();
        assert!(r.sender_bound);
        assert_eq!(r.steps.len(), 1);
        assert_eq!(r.zero_loss_pps(), 300_000.0);
    }

    #[test]
    fn finds_the_capacity_of_a_slower_forwarder() {
        let r = search(6, 0.001, fake(200_000.0, 300_000.0)).unwrap();
        assert!(!r.sender_bound);
        let z = r.zero_loss_pps();
        assert!((190_000.0..=200_000.0).contains(&z), "{z}");
        assert!(r.steps.len() <= 7);
        assert!(r.steps.iter().skip(1).all(|s| s.requested_pps.is_some()));
    }

    #[test]
    fn a_forwarder_that_always_loses_gives_no_zero_loss_rate() {
        let mut lossy = |rate: Option<u64>| -> Result<Step, ()> {
            let offered = rate.unwrap_or(100_000);
            Ok(Step::from_counts(rate, offered, offered / 2, 1.0))
        };
        let r = search(3, 0.001, &mut lossy).unwrap();
        assert_eq!(r.zero_loss, None);
        assert_eq!(r.zero_loss_pps(), 0.0);
        assert_eq!(r.steps.len(), 4);
    }

    #[test]
    fn measurement_errors_stop_the_search() {
        let mut n = 0;
        let r = search(5, 0.001, |_| {
            n += 1;
            if n == 2 {
                Err("boom")
            } else {
                Ok(Step::from_counts(None, 100, 50, 1.0))
            }
        });
        assert_eq!(r, Err("boom"));
    }

    #[test]
    fn steps_derive_rates_and_clamp_loss() {
        let s = Step::from_counts(Some(10), 1000, 1002, 2.0);
        assert_eq!(
            (s.offered_pps, s.forwarded_pps, s.loss),
            (500.0, 501.0, 0.0)
        );
        let s = Step::from_counts(None, 0, 0, 0.0);
        assert_eq!((s.offered_pps, s.loss), (0.0, 0.0));
    }
}
