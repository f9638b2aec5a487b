//! Running the steps that work on one loaded page, off the async threads:
//! the page is parsed (lazily, once) and every step up to the next
//! `navigate` runs on that parse, on a blocking thread that stops soon
//! after the run is stopped.
//!
//! Deliberately does no IO: what needs the network (a download's fetch, a
//! capture) comes back as an [`Outcome`] for the engine to carry out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_model::{ExtractedValue, Step};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::bounded::{Budget, PageLimits};
use crate::extract::{Document, Outcome, PageData};
use crate::{EngineError, StepFailure};

/// Steps that run on one page.
#[derive(Debug)]
pub(crate) struct PageBatch {
    pub(crate) page: PageData,
    /// The job's steps; the batch runs `range` of them.
    pub(crate) steps: Arc<[Step]>,
    pub(crate) range: std::ops::Range<usize>,
    pub(crate) limits: PageLimits,
}

/// What a batch did: an outcome and a time for each step that ran, in
/// order, and the failure that stopped it early, if one did (the step
/// after the last outcome).
#[derive(Debug)]
pub(crate) struct BatchDone {
    pub(crate) outcomes: Vec<(Outcome, u64)>,
    pub(crate) failure: Option<EngineError>,
}

/// Parses the page and runs the batch on a blocking thread.
///
/// The blocking work checks a flag as it goes (see `bounded`). When `stop`
/// is cancelled the flag is set and the run waits for the thread to notice,
/// which takes milliseconds, so the caller's slot is freed only once the
/// work has really stopped. If the future is dropped instead, the flag is
/// set all the same and the thread stops on its own just as fast.
pub(crate) async fn process(batch: PageBatch, stop: &CancellationToken) -> BatchDone {
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancelled.clone());
    let first_index = batch.range.start;
    let mut task = tokio::task::spawn_blocking({
        let cancelled = cancelled.clone();
        move || process_blocking(&batch, &cancelled)
    });
    let joined = tokio::select! {
        joined = &mut task => joined,
        () = stop.cancelled() => {
            cancelled.store(true, Ordering::Relaxed);
            task.await
        }
    };
    let failure = match joined {
        Ok(done) => return done,
        Err(err) if err.is_panic() => StepFailure::ProcessingPanicked {
            detail: panic_message(err.into_panic()),
        },
        Err(_) => StepFailure::ProcessingCancelled,
    };
    BatchDone {
        outcomes: Vec::new(),
        failure: Some(EngineError::at_step(first_index, failure)),
    }
}

/// Parses a page and runs page steps (`extract`, `assert`) on it within
/// `limits`, on the calling thread: what a job does with a page once it is
/// fetched. For benchmarks and fuzzing; jobs go through
/// [`HttpEngine`](crate::HttpEngine). Steps that need more than the page
/// (a download, a capture) are left undone.
pub fn process_page(
    body: &str,
    status: u16,
    steps: &[Step],
    limits: &PageLimits,
    stop: &AtomicBool,
) -> Result<std::collections::BTreeMap<String, ExtractedValue>, EngineError> {
    let batch = PageBatch {
        page: PageData {
            raw: Bytes::copy_from_slice(body.as_bytes()),
            status,
            final_url: None,
            load_ms: 0,
        },
        steps: steps.into(),
        range: 0..steps.len(),
        limits: *limits,
    };
    let done = process_blocking(&batch, stop);
    if let Some(failure) = done.failure {
        return Err(failure);
    }
    let mut extracted = std::collections::BTreeMap::new();
    for (outcome, _) in done.outcomes {
        if let Outcome::Extracted(values) = outcome {
            extracted.extend(values);
        }
    }
    Ok(extracted)
}

fn process_blocking(batch: &PageBatch, cancelled: &AtomicBool) -> BatchDone {
    let budget = Budget::new(&batch.limits, cancelled);
    let mut document = Document::new(&batch.page, &batch.limits);
    let mut done = BatchDone {
        outcomes: Vec::with_capacity(batch.range.len()),
        failure: None,
    };
    for index in batch.range.clone() {
        let step = &batch.steps[index];
        let started = Instant::now();
        let outcome = budget
            .check()
            .map_err(StepFailure::from)
            .and_then(|()| document.run(step, &budget));
        match outcome {
            // The parse is charged to the first step that needs it.
            Ok(outcome) => done.outcomes.push((outcome, millis(started.elapsed()))),
            Err(failure) => {
                done.failure = Some(EngineError::at(index, step, failure));
                break;
            }
        }
    }
    done
}

/// Sets the flag when dropped, i.e. when the future awaiting the blocking
/// work is dropped or finishes.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
