//! Jobs made one after another on the calling thread, each worked on one of several database
//! connections at once, their results taken back on the calling thread in the order the jobs
//! were made. What a pass uses to write its batches on two connections while it evaluates the
//! next one (`EvaluationPass::case_loop`).
//!
//! A failed job ends it: no more jobs are made, the jobs already handed out are finished (each
//! is its own transaction, so one that commits is simply there for the next pass), and the first
//! error is returned. Results after the failed one are not taken.

use diesel::pg::PgConnection;
use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::Mutex;

/// Make jobs with `make` (None: no more) until it runs out, work each with `work` on whichever
/// of `conns` is free, and give each result to `take` in the order of the jobs. A job is handed
/// straight to a free connection (none waits), so `make` runs one job ahead of the work only.
pub fn work_in_order<J: Send, R: Send>(
    conns: Vec<&mut PgConnection>,
    mut make: impl FnMut() -> anyhow::Result<Option<J>>,
    work: impl Fn(&mut PgConnection, J) -> anyhow::Result<R> + Sync,
    mut take: impl FnMut(R) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // A rendezvous: no job waits in the channel (each batch held is memory).
    let (jobs, waiting) = sync_channel::<(usize, J)>(0);
    let waiting = Mutex::new(waiting);
    let (done, results) = channel::<(usize, anyhow::Result<R>)>();
    std::thread::scope(|s| {
        for conn in conns {
            let (waiting, done, work) = (&waiting, done.clone(), &work);
            s.spawn(move || {
                while let Some((i, job)) = next_job(waiting) {
                    let result = work(conn, job);
                    let failed = result.is_err();
                    if done.send((i, result)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(done);
        let mut order = Order::default();
        let made = (|| -> anyhow::Result<()> {
            let mut i = 0;
            while let Some(job) = make()? {
                if jobs.send((i, job)).is_err() {
                    // Every worker stopped on an error: it is among the results.
                    break;
                }
                i += 1;
                while let Ok(result) = results.try_recv() {
                    order.put(result, &mut take)?;
                }
            }
            Ok(())
        })();
        drop(jobs);
        let mut outcome = made;
        for result in results {
            if outcome.is_ok() {
                outcome = order.put(result, &mut take);
            }
        }
        outcome
    })
}

/// The next job for a worker (None: no more, or another worker panicked holding the queue).
fn next_job<J>(waiting: &Mutex<Receiver<(usize, J)>>) -> Option<(usize, J)> {
    waiting.lock().ok()?.recv().ok()
}

/// Results waiting for the ones before them.
struct Order<R> {
    next: usize,
    ready: BTreeMap<usize, R>,
}

impl<R> Default for Order<R> {
    fn default() -> Self {
        Order {
            next: 0,
            ready: BTreeMap::new(),
        }
    }
}

impl<R> Order<R> {
    /// Keep job `i`'s result and give `take` every result whose turn has come; an error is
    /// returned at once.
    fn put(
        &mut self,
        (i, result): (usize, anyhow::Result<R>),
        take: &mut impl FnMut(R) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.ready.insert(i, result?);
        while let Some(r) = self.ready.remove(&self.next) {
            take(r)?;
            self.next += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Order;

    #[test]
    fn results_are_taken_in_the_order_of_their_jobs_whatever_order_they_come_in() {
        let mut order = Order::default();
        let mut taken = Vec::new();
        for i in [2, 0, 3, 1, 4] {
            order
                .put((i, Ok(i)), &mut |r| {
                    taken.push(r);
                    Ok(())
                })
                .expect("no error");
        }
        assert_eq!(taken, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn an_error_is_returned_at_once_and_nothing_after_a_gap_is_taken() {
        let mut order = Order::default();
        let mut taken = Vec::new();
        let mut take = |r: usize| {
            taken.push(r);
            Ok(())
        };
        order.put((1, Ok(1)), &mut take).expect("kept");
        let failed = order.put((2, Err(anyhow::anyhow!("batch 2 failed"))), &mut take);
        assert_eq!(failed.expect_err("the error").to_string(), "batch 2 failed");
        assert!(taken.is_empty(), "job 0 never came: {taken:?}");
    }
}
