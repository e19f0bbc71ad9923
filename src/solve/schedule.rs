//! The scheduler: stages run on a rayon pool as soon as the stages they
//! build on or copy from are done.
//!
//! - `jobs` bounds how many stages run at once; the pool still has a thread
//!   per CPU, for the work inside a stage (context walk, digests).
//! - The first failure cancels the others (running sandboxes see the flag)
//!   and is the build's error; a panicking stage is an error, not an abort.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, mpsc};

use super::{Build, BuiltStage, SolveError};

impl Build<'_> {
    /// Builds every stage of the plan's order; returns them by index.
    pub(super) fn run_stages(&self) -> Result<HashMap<usize, BuiltStage>, SolveError> {
        let plan = self.plan;
        let jobs = self.options.jobs.max(1);
        let threads = jobs
            .clamp(1, plan.order.len().max(1))
            .max(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
        let deps: HashMap<usize, Vec<usize>> =
            plan.order.iter().map(|&stage| (stage, plan.dependencies(stage))).collect();
        let results: Mutex<HashMap<usize, BuiltStage>> = Mutex::new(HashMap::new());
        let mut pending: VecDeque<usize> = plan.order.iter().copied().collect();
        let mut running = 0usize;
        let mut failure: Option<SolveError> = None;
        let (done_tx, done_rx) = mpsc::channel::<(usize, Result<BuiltStage, SolveError>)>();
        pool.in_place_scope(|scope| {
            loop {
                if failure.is_none() {
                    let finished: Vec<usize> = results.lock().unwrap().keys().copied().collect();
                    let ready: Vec<usize> = pending
                        .iter()
                        .copied()
                        .filter(|s| deps[s].iter().all(|d| finished.contains(d)))
                        .collect();
                    for stage in ready {
                        if running >= jobs {
                            break;
                        }
                        pending.retain(|s| *s != stage);
                        running += 1;
                        let inputs: HashMap<usize, BuiltStage> = {
                            let done = results.lock().unwrap();
                            deps[&stage].iter().map(|d| (*d, done[d].clone())).collect()
                        };
                        let tx = done_tx.clone();
                        scope.spawn(move |_| {
                            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                self.build_stage(stage, &inputs)
                            }))
                            .unwrap_or(Err(SolveError::Panicked(stage)));
                            let _ = tx.send((stage, result));
                        });
                    }
                }
                if running == 0 {
                    break;
                }
                let (stage, result) = done_rx.recv().expect("a stage reports");
                running -= 1;
                match result {
                    Ok(built) => {
                        results.lock().unwrap().insert(stage, built);
                    }
                    Err(e) => {
                        if failure.is_none() {
                            // Stop the others: running sandboxes see the flag.
                            self.options.cancel.store(true, Ordering::SeqCst);
                            failure = Some(e);
                        }
                    }
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if self.options.cancel.load(Ordering::SeqCst) {
            return Err(SolveError::Cancelled);
        }
        Ok(results.into_inner().unwrap())
    }
}
