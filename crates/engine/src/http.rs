//! The plain-HTTP engine: `navigate` with reqwest through the SSRF guard,
//! then `extract` and `assert` over the parsed page.
//!
//! Steps a browser is needed for (`click`, `fill`, `screenshot`, ...) are
//! refused with a message naming the step. HTML is parsed once per page, off
//! the async threads, together with every page step that follows it.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_model::{ExtractedValue, JobResult, JobSpec, Step, TargetUrl, Timings};
use reqwest::header::{HeaderValue, LOCATION};
use reqwest::{Response, StatusCode};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::bounded::{Budget, PageLimits};
use crate::extract::{Document, PageStep};
use crate::guard::{self, Guard, RefusedTarget, TooManyRedirects};
use crate::{
    EngineBuildError, EngineConfig, EngineError, Executor, RunFailure, RunOutput, StepFailure,
};

/// Runs jobs with plain HTTP requests. Cheap to clone; clones share one
/// connection pool.
#[derive(Debug, Clone)]
pub struct HttpEngine {
    client: reqwest::Client,
    guard: Guard,
    navigate_timeout: Duration,
    max_body_bytes: usize,
    max_redirects: usize,
    page_limits: PageLimits,
}

impl HttpEngine {
    pub fn new(config: EngineConfig) -> Result<Self, EngineBuildError> {
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| EngineBuildError::UserAgent(config.user_agent.clone()))?;
        let guard = Guard::new(config.egress);
        let mut builder = reqwest::Client::builder()
            .user_agent(user_agent)
            // A proxy would connect on our behalf to addresses the guard never sees.
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .redirect(guard::redirect_policy(guard, config.max_redirects));
        if let Some(resolver) = guard.resolver() {
            builder = builder.dns_resolver(Arc::new(resolver));
        }
        let client = builder.build().map_err(EngineBuildError::Client)?;
        Ok(Self {
            client,
            guard,
            navigate_timeout: config.navigate_timeout,
            max_body_bytes: config.max_body_bytes,
            max_redirects: config.max_redirects,
            page_limits: config.page_limits,
        })
    }

    /// Loads a page: the request, its redirects and the whole body, bounded by
    /// the navigate timeout.
    async fn navigate(
        &self,
        url: &TargetUrl,
        accept_error_status: bool,
    ) -> Result<Page, StepFailure> {
        let url = url.as_url();
        self.guard.check_url(url)?;
        let fetch = async {
            let response = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(|err| self.send_failure(url, err))?;
            self.guard
                .check_peer(response.url(), response.remote_addr())?;
            let status = response.status();
            if status.is_redirection() {
                check_unfollowed_redirect(&response)?;
            }
            let final_url = response.url().clone();
            let is_error = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if is_error && !accept_error_status {
                return Err(StepFailure::ErrorStatus {
                    status: status.as_u16(),
                    url: final_url.to_string(),
                });
            }
            let body = read_body(response, self.max_body_bytes).await?;
            Ok(Page {
                status: status.as_u16(),
                final_url,
                // Pages in other charsets keep their ASCII; the rest is replaced.
                body: String::from_utf8_lossy(&body).into(),
            })
        };
        match tokio::time::timeout(self.navigate_timeout, fetch).await {
            Ok(page) => page,
            Err(_elapsed) => Err(StepFailure::Timeout {
                after: self.navigate_timeout,
                url: url.to_string(),
            }),
        }
    }

    /// Classifies a failed request: refusals by the guard and redirect loops
    /// are permanent and travel as the error's source; the rest is network
    /// trouble worth retrying.
    fn send_failure(&self, url: &Url, err: reqwest::Error) -> StepFailure {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(current) = cause {
            if let Some(refused) = current.downcast_ref::<RefusedTarget>() {
                return StepFailure::Refused(refused.clone());
            }
            if current.downcast_ref::<TooManyRedirects>().is_some() {
                return StepFailure::TooManyRedirects {
                    max: self.max_redirects,
                    url: url.to_string(),
                };
            }
            cause = current.source();
        }
        StepFailure::Network {
            url: url.to_string(),
            detail: describe(err),
        }
    }
}

/// The last page loaded.
#[derive(Debug)]
struct Page {
    status: u16,
    final_url: Url,
    body: Arc<str>,
}

/// A run's progress.
#[derive(Debug, Default)]
struct Run {
    page: Option<Page>,
    extracted: BTreeMap<String, ExtractedValue>,
    timings: Timings,
}

#[async_trait::async_trait]
impl Executor for HttpEngine {
    async fn run(&self, spec: &JobSpec, stop: &CancellationToken) -> Result<RunOutput, RunFailure> {
        let started = Instant::now();
        let steps = &spec.steps;
        let mut run = Run::default();
        let mut index = 0;
        while index < steps.len() {
            match &steps[index] {
                Step::Navigate {
                    url,
                    accept_error_status,
                    ..
                } => {
                    let step_started = Instant::now();
                    // A fetch holds nothing but sockets: dropping it stops it.
                    let page = tokio::select! {
                        page = self.navigate(url, *accept_error_status) => page,
                        () = stop.cancelled() => Err(StepFailure::ProcessingCancelled),
                    }
                    .map_err(|failure| EngineError::at_step(index, failure))?;
                    let elapsed = millis(step_started.elapsed());
                    tracing::debug!(
                        step = index,
                        url = %url,
                        final_url = %page.final_url,
                        status = page.status,
                        elapsed_ms = elapsed,
                        "page loaded"
                    );
                    run.page = Some(page);
                    run.timings.fetch_ms += elapsed;
                    run.timings.steps_ms.push(elapsed);
                    index += 1;
                }
                step @ (Step::Extract { .. } | Step::Assert { .. }) => {
                    let Some(page) = &run.page else {
                        let failure = StepFailure::NoPage {
                            action: step.action(),
                        };
                        return Err(EngineError::at_step(index, failure).into());
                    };
                    // Every page step up to the next navigate (or unsupported
                    // step) shares one parse of the page.
                    let end = steps[index..]
                        .iter()
                        .position(|step| PageStep::of(step).is_none())
                        .map_or(steps.len(), |offset| index + offset);
                    let batch = PageBatch {
                        body: page.body.clone(),
                        status: page.status,
                        steps: steps[index..end].to_vec(),
                        first_index: index,
                        limits: self.page_limits,
                    };
                    let done = process(batch, stop).await?;
                    run.timings.process_ms += done.steps_ms.iter().sum::<u64>();
                    run.timings.steps_ms.extend(done.steps_ms);
                    run.extracted.extend(done.extracted);
                    index = end;
                }
                step => {
                    let failure = StepFailure::Unsupported {
                        step: index,
                        action: step.action(),
                    };
                    return Err(EngineError::at_step(index, failure).into());
                }
            }
        }
        let Some(page) = run.page else {
            return Err(EngineError::whole_job(StepFailure::NoSteps).into());
        };
        run.timings.total_ms = millis(started.elapsed());
        Ok(RunOutput::from(JobResult {
            extracted: run.extracted,
            status: page.status,
            final_url: page.final_url.into(),
            timings: run.timings,
            engine: accord_model::RunEngine::Http,
            engine_reason: None,
            artifacts: Vec::new(),
        }))
    }
}

/// Consecutive page steps and the page they run on.
#[derive(Debug)]
struct PageBatch {
    body: Arc<str>,
    status: u16,
    steps: Vec<Step>,
    /// Index in the job of `steps[0]`.
    first_index: usize,
    limits: PageLimits,
}

/// What a batch produced.
#[derive(Debug)]
struct BatchDone {
    extracted: BTreeMap<String, ExtractedValue>,
    steps_ms: Vec<u64>,
}

/// Parses the page and runs the batch on a blocking thread.
///
/// The blocking work checks a flag as it goes (see `bounded`). When `stop`
/// is cancelled the flag is set and the run waits for the thread to notice,
/// which takes milliseconds, so the caller's slot is freed only once the
/// work has really stopped. If the future is dropped instead, the flag is
/// set all the same and the thread stops on its own just as fast.
async fn process(batch: PageBatch, stop: &CancellationToken) -> Result<BatchDone, EngineError> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancelled.clone());
    let first_index = batch.first_index;
    let mut task = tokio::task::spawn_blocking({
        let cancelled = cancelled.clone();
        move || process_blocking(batch, &cancelled)
    });
    let joined = tokio::select! {
        joined = &mut task => joined,
        () = stop.cancelled() => {
            cancelled.store(true, Ordering::Relaxed);
            task.await
        }
    };
    match joined {
        Ok(done) => done,
        Err(err) if err.is_panic() => Err(EngineError::at_step(
            first_index,
            StepFailure::ProcessingPanicked {
                detail: panic_message(err.into_panic()),
            },
        )),
        Err(_) => Err(EngineError::at_step(
            first_index,
            StepFailure::ProcessingCancelled,
        )),
    }
}

/// Parses a page and runs page steps (`extract`, `assert`) on it within
/// `limits`, on the calling thread: what a job does with a page once it is
/// fetched. For benchmarks and fuzzing; jobs go through [`HttpEngine`].
///
/// # Panics
/// If `steps` holds a step that is not a page step.
pub fn process_page(
    body: &str,
    status: u16,
    steps: &[Step],
    limits: &PageLimits,
    stop: &AtomicBool,
) -> Result<BTreeMap<String, ExtractedValue>, EngineError> {
    let batch = PageBatch {
        body: body.into(),
        status,
        steps: steps.to_vec(),
        first_index: 0,
        limits: *limits,
    };
    process_blocking(batch, stop).map(|done| done.extracted)
}

fn process_blocking(batch: PageBatch, cancelled: &AtomicBool) -> Result<BatchDone, EngineError> {
    let parse_started = Instant::now();
    let budget = Budget::new(&batch.limits, cancelled);
    let document = Document::parse(&batch.body, batch.status, &batch.limits, &budget)
        .map_err(|exceeded| EngineError::at_step(batch.first_index, exceeded.into()))?;
    // The parse is charged to the first step of the batch.
    let mut carried = parse_started.elapsed();
    let mut done = BatchDone {
        extracted: BTreeMap::new(),
        steps_ms: Vec::with_capacity(batch.steps.len()),
    };
    for (offset, step) in batch.steps.iter().enumerate() {
        let index = batch.first_index + offset;
        budget
            .check()
            .map_err(|exceeded| EngineError::at_step(index, exceeded.into()))?;
        let step_started = Instant::now();
        let page_step = PageStep::of(step).expect("a batch holds only page steps");
        document
            .apply(page_step, &budget, &mut done.extracted)
            .map_err(|failure| EngineError::at_step(index, failure))?;
        done.steps_ms.push(millis(carried + step_started.elapsed()));
        carried = Duration::ZERO;
    }
    Ok(done)
}

/// Sets the flag when dropped, i.e. when the future awaiting the blocking
/// work is dropped or finishes.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Refuses a redirect response the client did not follow because its target
/// is not an http(s) URL (the client only hands http-like targets to the
/// redirect policy). Other unfollowed redirects are simply the page.
fn check_unfollowed_redirect(response: &Response) -> Result<(), RefusedTarget> {
    let target = response
        .headers()
        .get(LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| response.url().join(location).ok());
    match target {
        Some(target) => guard::check_scheme(&target),
        None => Ok(()),
    }
}

/// Reads the body, failing as soon as it would pass `limit` bytes.
async fn read_body(mut response: Response, limit: usize) -> Result<Vec<u8>, StepFailure> {
    let too_large = |response: &Response| StepFailure::BodyTooLarge {
        limit,
        url: response.url().to_string(),
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(too_large(&response));
    }
    // Trust the announced length only as far as the limit for preallocation.
    let mut body = Vec::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await.map_err(|err| StepFailure::Network {
        url: response.url().to_string(),
        detail: describe(err),
    })? {
        if body.len() + chunk.len() > limit {
            return Err(too_large(&response));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A reqwest error and its causes as one line, without the URL (the step's
/// message names it already).
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
