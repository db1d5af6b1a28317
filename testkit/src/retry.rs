//! Polling with a deadline, for what takes a while to become reachable on a
//! test network (an onion service whose descriptor is still spreading, exit
//! circuits still being built, a server still starting).
//!
//! Every loop here ends by its deadline; the pause
//! between attempts keeps a loop from spinning, and is no synchronisation:
//! each attempt checks the condition itself.

use std::time::{Duration, Instant};

/// The usual pause between attempts.
pub const EVERY: Duration = Duration::from_millis(500);

/// A success, and what it took.
#[derive(Debug)]
pub struct Retried<T> {
    /// What the successful attempt returned.
    pub value: T,
    /// Attempts made, the successful one included.
    pub attempts: u32,
    /// Time from the first attempt to the success.
    pub elapsed: Duration,
}

/// The deadline passed without a success.
#[derive(Debug)]
pub struct GaveUp<E> {
    /// The error of the last attempt.
    pub last: E,
    /// Attempts made.
    pub attempts: u32,
    /// Time from the first attempt to the last failure.
    pub elapsed: Duration,
}

impl<E: std::fmt::Display> std::fmt::Display for GaveUp<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no success after {} attempt(s) in {:.1}s; last: {}",
            self.attempts,
            self.elapsed.as_secs_f64(),
            self.last
        )
    }
}

/// Calls `attempt` with the attempt's number (from 1) until it succeeds,
/// pausing `every` after a failure; gives up after the first failure that
/// ends later than `deadline` after the start.
pub fn retry<T, E>(
    deadline: Duration,
    every: Duration,
    attempt: impl FnMut(u32) -> Result<T, E>,
) -> Result<Retried<T>, GaveUp<E>> {
    retry_while(every, |_, elapsed| elapsed <= deadline, attempt)
}

/// The count and clock every retry loop here shares.
struct Tries {
    start: Instant,
    attempts: u32,
}

impl Tries {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            attempts: 0,
        }
    }

    /// The next attempt's number.
    fn next(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// What the loop returns after an attempt that gave `result`, or `None`
    /// to pause and try again, while `go_on(attempts made, time since the
    /// start)` holds.
    fn settle<T, E>(
        &self,
        result: Result<T, E>,
        go_on: impl Fn(u32, Duration) -> bool,
    ) -> Option<Result<Retried<T>, GaveUp<E>>> {
        let elapsed = self.start.elapsed();
        match result {
            Ok(value) => Some(Ok(Retried {
                value,
                attempts: self.attempts,
                elapsed,
            })),
            Err(last) if !go_on(self.attempts, elapsed) => Some(Err(GaveUp {
                last,
                attempts: self.attempts,
                elapsed,
            })),
            Err(_) => None,
        }
    }
}

/// The loop of [`retry`]: after a failure, tries
/// again while `go_on(attempts made, time since the start)` holds.
fn retry_while<T, E>(
    every: Duration,
    go_on: impl Fn(u32, Duration) -> bool,
    mut attempt: impl FnMut(u32) -> Result<T, E>,
) -> Result<Retried<T>, GaveUp<E>> {
    let mut tries = Tries::new();
    loop {
        let n = tries.next();
        if let Some(end) = tries.settle(attempt(n), &go_on) {
            return end;
        }
        std::thread::sleep(every);
    }
}

/// [`retry`] for async attempts, pausing on the runtime's timer.
pub async fn retry_async<T, E>(
    deadline: Duration,
    every: Duration,
    mut attempt: impl AsyncFnMut(u32) -> Result<T, E>,
) -> Result<Retried<T>, GaveUp<E>> {
    let mut tries = Tries::new();
    loop {
        let n = tries.next();
        if let Some(end) = tries.settle(attempt(n).await, |_, elapsed| elapsed <= deadline) {
            return end;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `f` every [`EVERY`] until it yields `Some`, within `deadline`; an
/// error from `f` ends the wait at once (it is not worth waiting for), and
/// `what` names the awaited thing when the deadline passes.
pub fn until<T>(
    deadline: Duration,
    what: &str,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        anyhow::ensure!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        std::thread::sleep(EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(1);

    #[test]
    fn retry_returns_the_first_success_and_counts_attempts() {
        let r = retry(Duration::from_secs(10), SHORT, |n| {
            if n < 3 { Err(n) } else { Ok("up") }
        })
        .unwrap();
        assert_eq!((r.value, r.attempts), ("up", 3));
    }

    #[test]
    fn retry_gives_up_after_the_deadline_with_the_last_error() {
        let e = retry(Duration::from_millis(30), SHORT, Err::<(), _>).unwrap_err();
        assert_eq!(e.last, e.attempts);
        assert!(e.elapsed > Duration::from_millis(30));
    }

    #[test]
    fn gave_up_names_the_attempts_and_the_last_error() {
        let g = GaveUp {
            last: "connection reset",
            attempts: 4,
            elapsed: Duration::from_millis(2500),
        };
        assert_eq!(
            g.to_string(),
            "no success after 4 attempt(s) in 2.5s; last: connection reset"
        );
    }

    #[tokio::test]
    async fn retry_async_gives_up_after_the_deadline_with_the_last_error() {
        let e = retry_async(Duration::from_millis(30), SHORT, async |n| Err::<(), _>(n))
            .await
            .unwrap_err();
        assert_eq!(e.last, e.attempts);
        assert!(e.elapsed > Duration::from_millis(30));
    }

    #[test]
    fn until_stops_at_an_error_without_waiting() {
        let mut calls = 0;
        let e = until::<()>(Duration::from_secs(10), "x", || {
            calls += 1;
            anyhow::bail!("broken")
        })
        .unwrap_err();
        assert_eq!((e.to_string(), calls), ("broken".to_owned(), 1));
    }

    #[test]
    fn until_names_what_did_not_come_in_time() {
        let e = until::<()>(Duration::ZERO, "the server", || Ok(None)).unwrap_err();
        assert_eq!(e.to_string(), "the server: not within 0ns");
    }
}
