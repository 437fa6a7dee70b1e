//! Jobs made one after another on the calling thread, each worked on one of several
//! connections at once (any `C`; a pass gives it `PgConnection`s), their results taken back on
//! the calling thread in the order the jobs were made. What a pass uses to write its batches on
//! two connections while it evaluates the next one (`EvaluationPass::overlapped`).
//!
//! A failed job ends it: no more jobs are made, the jobs already handed out are finished (each
//! is its own transaction, so one that commits is simply there for the next pass), and the first
//! error is returned. Results after the failed one are not taken.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::{Arc, Mutex};

/// Make jobs with `make` (None: no more) until it runs out, work each with `work` on whichever
/// of `conns` is free, and give each result to `take` in the order of the jobs. A job is handed
/// straight to a free connection (none waits), so `make` runs one job ahead of the work only.
pub fn work_in_order<C: Send, J: Send, R: Send>(
    conns: Vec<&mut C>,
    mut make: impl FnMut() -> anyhow::Result<Option<J>>,
    work: impl Fn(&mut C, J) -> anyhow::Result<R> + Sync,
    mut take: impl FnMut(R) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // A rendezvous: no job waits in the channel (each batch held is memory). The workers alone
    // hold the receiving end, so once every one has stopped (on an error), handing out a job
    // fails at once instead of waiting for ever.
    let (jobs, waiting) = sync_channel::<(usize, J)>(0);
    let waiting = Arc::new(Mutex::new(waiting));
    let (done, results) = channel::<(usize, anyhow::Result<R>)>();
    std::thread::scope(|s| {
        for conn in conns {
            let (waiting, done, work) = (waiting.clone(), done.clone(), &work);
            s.spawn(move || {
                while let Some((i, job)) = next_job(&waiting) {
                    let result = work(conn, job);
                    let failed = result.is_err();
                    if done.send((i, result)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop((done, waiting));
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
    use super::{work_in_order, Order};
    use std::time::Duration;

    /// `f`'s outcome, or a panic if it takes more than ten seconds (a hang).
    fn within_ten_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("finished within ten seconds")
    }

    /// Jobs 0..n worked on `workers` counters (each counts the jobs it did); job `fail` fails.
    fn run(
        workers: usize,
        n: usize,
        fail: Option<usize>,
    ) -> (anyhow::Result<()>, Vec<usize>, Vec<usize>) {
        let mut counters = vec![0usize; workers];
        let mut taken = Vec::new();
        let mut next = 0;
        let result = work_in_order(
            counters.iter_mut().collect(),
            || {
                next += 1;
                Ok((next <= n).then_some(next - 1))
            },
            |count, job| {
                *count += 1;
                // Later jobs finish sooner, so results come back out of order.
                std::thread::sleep(Duration::from_millis(((n - job) % 4) as u64));
                match fail {
                    Some(f) if f == job => Err(anyhow::anyhow!("job {job} failed")),
                    _ => Ok(job),
                }
            },
            |r| {
                taken.push(r);
                Ok(())
            },
        );
        (result, taken, counters)
    }

    #[test]
    fn every_job_is_worked_once_on_some_connection_and_taken_in_order() {
        let (result, taken, counters) = within_ten_seconds(|| run(2, 40, None));
        result.expect("no error");
        assert_eq!(taken, (0..40).collect::<Vec<_>>());
        assert_eq!(counters.iter().sum::<usize>(), 40);
        assert!(
            counters.iter().all(|&c| c > 0),
            "both connections worked: {counters:?}"
        );
    }

    #[test]
    fn a_failed_job_ends_the_work_with_its_error_and_nothing_waits_for_ever() {
        for workers in [1, 2] {
            let (result, taken, _) = within_ten_seconds(move || run(workers, 40, Some(3)));
            let error = result.expect_err("the failure");
            assert_eq!(error.to_string(), "job 3 failed", "{workers} worker(s)");
            // Jobs before the failed one, in order, as far as they had come back.
            assert!(
                taken.len() <= 3 && taken.iter().enumerate().all(|(i, &j)| i == j),
                "{workers} worker(s): {taken:?}"
            );
        }
    }

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
