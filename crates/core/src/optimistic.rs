//! The one optimistic-concurrency helper: read, decide, commit guarded by what was read, and
//! run again when a concurrent writer won. Every read-modify-write of stored records goes
//! through [`commit_with_retries`] instead of a hand-written retry loop.

use crate::barrier::{BarrierOp, View};
use crate::error::{CoreError, ErrorCode, Result};

/// How many times a step runs before giving up. Every failed attempt means another request
/// committed, so this bounds the work per request, not progress overall.
pub const MAX_ATTEMPTS: usize = 256;

/// What one attempt decided.
pub enum Step<T> {
    /// Commit these operations (with `Check`s guarding what the step read) and answer `T`.
    Commit(Vec<BarrierOp>, T),
    /// Nothing to write: answer `T` now.
    Done(T),
}

/// Run `step` until its operations commit. A storage-level conflict (a `Check` that no longer
/// holds) runs it again after a short randomized backoff; any other error ends it. After
/// [`MAX_ATTEMPTS`] conflicts the caller gets a `Conflict` error it may retry.
///
/// `step` is called afresh for each attempt and returns the attempt's future (write it as
/// `|| async move { … }` over references: the future stays `Send`).
pub async fn commit_with_retries<T, F, Fut>(view: &View, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Step<T>>>,
{
    for attempt in 0..MAX_ATTEMPTS {
        match step().await? {
            Step::Done(t) => return Ok(t),
            Step::Commit(ops, t) => match view.transaction(ops).await {
                Ok(()) => return Ok(t),
                Err(e) if e.code == ErrorCode::Conflict => backoff(attempt).await,
                Err(e) => return Err(e),
            },
        }
    }
    Err(too_much_contention())
}

/// The error after too many lost races.
pub fn too_much_contention() -> CoreError {
    CoreError::new(
        ErrorCode::Conflict,
        "too many concurrent changes; please retry",
    )
}

/// A guard for a commit: the record at `key` is still `expected` (`None`: still absent).
pub fn check(key: impl Into<String>, expected: Option<&zeroize::Zeroizing<Vec<u8>>>) -> BarrierOp {
    BarrierOp::Check {
        key: key.into(),
        expected: expected.cloned(),
    }
}

/// Sleep a random time below a cap that doubles with each attempt (100 µs up to 6.4 ms), so
/// that writers that collided do not collide again in lockstep. The first retry is immediate.
async fn backoff(attempt: usize) {
    if attempt == 0 {
        return;
    }
    jitter_sleep(attempt).await;
}

/// Sleep a random time below `100 µs << min(attempt, 6)`: the backoff between two attempts of a
/// read-check-write cycle that lost a race (also used by the kv store's own commit loop).
pub async fn jitter_sleep(attempt: usize) {
    let mut r = [0u8; 2];
    let jitter = match aws_lc_rs::rand::fill(&mut r) {
        Ok(()) => u64::from(u16::from_le_bytes(r)),
        Err(_) => 0,
    };
    let cap_us = 100u64 << attempt.min(6);
    tokio::time::sleep(std::time::Duration::from_micros(jitter % cap_us)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::barrier::{Barrier, SecretKey};
    use std::sync::Arc;

    async fn view() -> View {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::InmemBackend::new())));
        let key = SecretKey::generate().unwrap();
        barrier.initialize(&key).await.unwrap();
        barrier.unseal(&key).await.unwrap();
        View::new(barrier, "t/")
    }

    /// A counter incremented by many concurrent writers loses no increment.
    #[tokio::test]
    async fn concurrent_increments_all_land() {
        let v = view().await;
        let v = &v;
        let writer = || async move {
            for _ in 0..10 {
                commit_with_retries(v, || async move {
                    let raw = v.get("n").await?;
                    let n: u64 = raw
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).parse().unwrap_or(0))
                        .unwrap_or(0);
                    // let the other writers read the same value in between
                    tokio::task::yield_now().await;
                    let value = zeroize::Zeroizing::new((n + 1).to_string().into_bytes());
                    Ok(Step::Commit(
                        vec![
                            check("n", raw.as_ref()),
                            BarrierOp::Put {
                                key: "n".into(),
                                value,
                            },
                        ],
                        (),
                    ))
                })
                .await
                .unwrap();
            }
        };
        futures_util::future::join_all((0..16).map(|_| writer())).await;
        let n = v.get("n").await.unwrap().unwrap();
        assert_eq!(String::from_utf8_lossy(&n), "160");
    }

    #[tokio::test]
    async fn step_errors_and_done_end_at_once() {
        let v = view().await;
        let runs = std::sync::atomic::AtomicUsize::new(0);
        let runs = &runs;
        let r: Result<()> = commit_with_retries(&v, || async move {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(CoreError::invalid("no"))
        })
        .await;
        assert_eq!(r.unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        let r = commit_with_retries(&v, || async move { Ok(Step::Done(7)) }).await;
        assert_eq!(r.unwrap(), 7);
    }
}
