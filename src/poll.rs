//! Waiting on a condition: the one loop every gate and start-up wait uses.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one look at the condition found.
pub enum Probe<T> {
    /// It holds.
    Done(T),
    /// Not yet; what was seen, for the message should time run out.
    NotYet(String),
    /// It never will (a process gone, a state Patroni does not leave): stop now.
    Fail(String),
}

/// Why the wait ended without the condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gave {
    /// `timeout` passed; what the last look saw.
    Up { last: String },
    /// A look said it never will.
    Failed(String),
}

/// Look at a condition every `every` until it holds, fails, or `timeout` has passed.
pub async fn poll_until<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> Result<T, Gave>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Probe<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Probe::Done(v) => return Ok(v),
            Probe::Fail(e) => return Err(Gave::Failed(e)),
            Probe::NotYet(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(Gave::Up { last });
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn it_returns_what_held_or_why_it_gave_up() {
        let mut n = 0;
        let r = poll_until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            let seen = n;
            async move {
                if seen == 3 {
                    Probe::Done(seen)
                } else {
                    Probe::NotYet(format!("{seen}"))
                }
            }
        })
        .await;
        assert_eq!(r, Ok(3));
        let r: Result<(), Gave> = poll_until(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { Probe::NotYet("still starting".to_owned()) },
        )
        .await;
        assert_eq!(
            r,
            Err(Gave::Up {
                last: "still starting".to_owned()
            })
        );
        let r: Result<(), Gave> =
            poll_until(Duration::from_secs(5), Duration::from_millis(1), || async {
                Probe::Fail("gone".to_owned())
            })
            .await;
        assert_eq!(r, Err(Gave::Failed("gone".to_owned())));
    }
}
