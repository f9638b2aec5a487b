//! The plain-HTTP engine: every step that needs no browser.
//!
//! - `navigate` fetches the page through the SSRF guard (`wait_until` means
//!   nothing here: the whole body is read);
//! - `extract`, `assert` and `download` by selector run on the parsed page
//!   (see `extract`), every step up to the next `navigate` sharing one
//!   parse, off the async threads;
//! - `download` fetches a file (by URL, or the link a selector points at)
//!   up to its size cap and keeps it as an artifact with its SHA-256;
//! - `capture_network` records, from there on, the responses this engine
//!   fetches itself (pages and downloads) whose URL matches;
//! - `save_html` keeps the current page's body as an artifact. The final
//!   page is not kept otherwise: a job that wants its HTML asks for it, so
//!   the common job stores nothing.
//!
//! Steps that need a live page (`click`, `screenshot`, `evaluate`, console
//! checks, ...) are refused permanently with a message naming the step and
//! pointing to the browser engine; submission refuses them earlier.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_egress::{Resolver, SystemResolver};
use accord_model::{
    ArtifactRef, Engine, ExtractedValue, JobResult, JobSpec, RunEngine, Step, TargetUrl, Timings,
};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::bounded::PageLimits;
use crate::capture::ActiveCapture;
use crate::extract::{Outcome, PageData};
use crate::fetch::{Accept, FetchRules, Fetched, Fetcher};
use crate::process::{millis, process, PageBatch};
use crate::{
    Artifact, EngineBuildError, EngineConfig, EngineError, Executor, JobEgress, RunFailure,
    RunOutput, StepFailure,
};

/// The content type of a page whose response did not say.
const DEFAULT_PAGE_TYPE: &str = "text/html";
/// The content type of a file whose response did not say.
const DEFAULT_FILE_TYPE: &str = "application/octet-stream";

/// Runs jobs with plain HTTP requests. Cheap to clone; clones share one
/// connection pool.
#[derive(Debug, Clone)]
pub struct HttpEngine {
    fetcher: Fetcher,
    /// Kept to build a job's own fetcher when its policies need one.
    config: Arc<EngineConfig>,
    navigate_timeout: Duration,
    download_timeout: Duration,
    max_body_bytes: usize,
    page_limits: PageLimits,
}

impl HttpEngine {
    /// An engine whose guard resolves names with the system's resolver.
    pub fn new(config: EngineConfig) -> Result<Self, EngineBuildError> {
        Self::with_resolver(config, Arc::new(SystemResolver))
    }

    /// An engine whose guard resolves names with `resolver`: a
    /// `StubResolver` whose answers a test sets (DNS rebinding included).
    pub fn with_resolver(
        config: EngineConfig,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Self, EngineBuildError> {
        Ok(Self {
            fetcher: Fetcher::new(&config, resolver)?,
            config: Arc::new(config.clone()),
            navigate_timeout: config.navigate_timeout,
            download_timeout: config.download_timeout,
            max_body_bytes: config.max_body_bytes,
            page_limits: config.page_limits,
        })
    }

    /// Fetches `url` as `rules` say unless `stop` comes first. A fetch holds
    /// nothing but sockets: dropping it stops it.
    async fn fetch(
        &self,
        url: &TargetUrl,
        rules: FetchRules,
        run: &mut Run,
        stop: &CancellationToken,
    ) -> Result<Fetched, StepFailure> {
        tokio::select! {
            fetched = self.fetcher.fetch(url, rules, &mut run.captures) => fetched,
            () = stop.cancelled() => Err(StepFailure::ProcessingCancelled),
        }
    }

    async fn navigate(
        &self,
        index: usize,
        url: &TargetUrl,
        accept_error_status: bool,
        run: &mut Run,
        stop: &CancellationToken,
    ) -> Result<(), StepFailure> {
        let rules = FetchRules {
            accept: Accept::Page {
                error_status: accept_error_status,
            },
            max_body_bytes: u64::try_from(self.max_body_bytes).unwrap_or(u64::MAX),
            timeout: self.navigate_timeout,
        };
        let fetched = self.fetch(url, rules, run, stop).await?;
        let elapsed = millis(fetched.elapsed);
        tracing::debug!(
            step = index,
            url = %url,
            final_url = %fetched.final_url,
            status = fetched.status,
            elapsed_ms = elapsed,
            "page loaded"
        );
        run.timings.fetch_ms += elapsed;
        run.timings.steps_ms.push(elapsed);
        run.page = Some(Page {
            data: PageData {
                raw: fetched.body,
                status: fetched.status,
                final_url: Some(fetched.final_url),
                load_ms: elapsed,
            },
            content_type: fetched
                .content_type
                .unwrap_or_else(|| DEFAULT_PAGE_TYPE.to_owned()),
        });
        Ok(())
    }

    /// Fetches a file for the `index`-th step and keeps it as an artifact.
    /// Returns the time it took.
    async fn download(
        &self,
        index: usize,
        step: &Step,
        url: &TargetUrl,
        run: &mut Run,
        stop: &CancellationToken,
    ) -> Result<u64, StepFailure> {
        let Step::Download { max_bytes, .. } = step else {
            unreachable!("only download steps download");
        };
        let rules = FetchRules {
            accept: Accept::File,
            max_body_bytes: *max_bytes,
            timeout: self.download_timeout,
        };
        let fetched = self.fetch(url, rules, run, stop).await?;
        let elapsed = millis(fetched.elapsed);
        let name = step
            .artifact_name(index)
            .expect("a download has an artifact");
        let content_type = fetched
            .content_type
            .unwrap_or_else(|| DEFAULT_FILE_TYPE.to_owned());
        tracing::debug!(
            step = index,
            url = %url,
            bytes = fetched.body.len(),
            elapsed_ms = elapsed,
            "file downloaded"
        );
        run.keep(Artifact::new(name, content_type, fetched.body));
        run.timings.fetch_ms += elapsed;
        Ok(elapsed)
    }

    /// Runs the steps from `index` up to the next `navigate` on the current
    /// page: one parse on a blocking thread, then, in step order, what
    /// needs the network or keeps artifacts. The first failure in step
    /// order wins. Returns where the next step starts.
    async fn page_steps(
        &self,
        index: usize,
        steps: &Arc<[Step]>,
        run: &mut Run,
        stop: &CancellationToken,
    ) -> Result<usize, EngineError> {
        let step = &steps[index];
        let Some(page) = &run.page else {
            let failure = StepFailure::NoPage {
                action: step.action(),
            };
            return Err(EngineError::at(index, step, failure));
        };
        // A batch ends before the next `navigate`, or just after a
        // `follow`: the steps after either work on another page.
        let end = steps[index..]
            .iter()
            .enumerate()
            .find_map(|(offset, step)| match step {
                Step::Navigate { .. } if offset > 0 => Some(index + offset),
                Step::Follow { .. } => Some(index + offset + 1),
                _ => None,
            })
            .unwrap_or(steps.len());
        let batch = PageBatch {
            page: page.data.clone(),
            steps: steps.clone(),
            range: index..end,
            limits: self.page_limits,
        };
        let done = process(batch, stop).await;
        for (at, (outcome, ms)) in (index..).zip(done.outcomes) {
            let step = &steps[at];
            let fail = |failure| EngineError::at(at, step, failure);
            let step_ms = match outcome {
                Outcome::Extracted(values) => {
                    run.extracted.extend(values);
                    run.timings.process_ms += ms;
                    ms
                }
                Outcome::Checked => {
                    run.timings.process_ms += ms;
                    ms
                }
                Outcome::Follow(url) => {
                    run.timings.process_ms += ms;
                    ms + self
                        .download(at, step, &url, run, stop)
                        .await
                        .map_err(fail)?
                }
                Outcome::Go(Some(url)) => {
                    run.timings.process_ms += ms;
                    self.navigate(at, &url, false, run, stop)
                        .await
                        .map_err(fail)?;
                    // `navigate` timed its load as a step of its own: this one.
                    ms + run.timings.steps_ms.pop().unwrap_or(0)
                }
                Outcome::Go(None) => {
                    // An optional link was missing: the job ends here.
                    run.timings.process_ms += ms;
                    run.timings.steps_ms.push(ms);
                    return Ok(steps.len());
                }
                Outcome::Later => match step {
                    Step::Download { url: Some(url), .. } => self
                        .download(at, step, url, run, stop)
                        .await
                        .map_err(fail)?,
                    _ => {
                        run.later(at, step);
                        0
                    }
                },
            };
            run.timings.steps_ms.push(step_ms);
        }
        match done.failure {
            Some(failure) => Err(failure),
            None => Ok(end),
        }
    }

    async fn run_steps(
        &self,
        spec: &JobSpec,
        run: &mut Run,
        stop: &CancellationToken,
    ) -> Result<(), EngineError> {
        let steps: Arc<[Step]> = spec.steps.as_slice().into();
        let mut index = 0;
        while index < steps.len() {
            let step = &steps[index];
            match step {
                Step::Navigate {
                    url,
                    accept_error_status,
                    ..
                } => {
                    self.navigate(index, url, *accept_error_status, run, stop)
                        .await
                        .map_err(|failure| EngineError::at(index, step, failure))?;
                    index += 1;
                }
                // Allowed before the first page, so it sees the first load.
                Step::CaptureNetwork { .. } if run.page.is_none() => {
                    run.later(index, step);
                    run.timings.steps_ms.push(0);
                    index += 1;
                }
                _ => index = self.page_steps(index, &steps, run, stop).await?,
            }
        }
        if run.page.is_none() {
            return Err(EngineError::whole_job(StepFailure::NoSteps));
        }
        Ok(())
    }
}

/// The current page.
#[derive(Debug)]
struct Page {
    data: PageData,
    content_type: String,
}

/// A run's progress.
#[derive(Debug, Default)]
struct Run {
    page: Option<Page>,
    extracted: BTreeMap<String, ExtractedValue>,
    timings: Timings,
    artifacts: Vec<Artifact>,
    captures: Vec<ActiveCapture>,
}

impl Run {
    /// Keeps an artifact; one of the same name (which validation forbids)
    /// is replaced rather than kept twice.
    fn keep(&mut self, artifact: Artifact) {
        self.artifacts.retain(|kept| kept.name != artifact.name);
        self.artifacts.push(artifact);
    }

    /// What a step that needed nothing of the parse does: start a capture,
    /// or keep the page's HTML.
    fn later(&mut self, index: usize, step: &Step) {
        match step {
            Step::CaptureNetwork {
                url_pattern,
                max_body_bytes,
                ..
            } => {
                let name = step
                    .artifact_name(index)
                    .expect("a capture has an artifact");
                self.captures.retain(|capture| capture.name != name);
                self.captures.push(ActiveCapture::new(
                    name,
                    url_pattern.clone(),
                    *max_body_bytes,
                ));
            }
            Step::SaveHtml { .. } => {
                let name = step
                    .artifact_name(index)
                    .expect("save_html has an artifact");
                if let Some(page) = &self.page {
                    let artifact =
                        Artifact::new(name, page.content_type.clone(), page.data.raw.clone());
                    self.keep(artifact);
                }
            }
            _ => {}
        }
    }

    /// Every artifact of the run, the captures last.
    fn into_artifacts(mut self) -> Vec<Artifact> {
        for capture in std::mem::take(&mut self.captures) {
            self.keep(capture.into_artifact());
        }
        self.artifacts
    }
}

#[async_trait::async_trait]
impl Executor for HttpEngine {
    async fn run_with(
        &self,
        spec: &JobSpec,
        egress: &JobEgress,
        stop: &CancellationToken,
    ) -> Result<RunOutput, RunFailure> {
        if egress.is_empty() {
            return self.run(spec, stop).await;
        }
        let fetcher = self.fetcher.for_job(&self.config, egress).map_err(|err| {
            RunFailure::from(EngineError::whole_job(StepFailure::JobClient(
                err.to_string(),
            )))
        })?;
        let engine = Self {
            fetcher,
            ..self.clone()
        };
        engine.run(spec, stop).await
    }

    async fn run(&self, spec: &JobSpec, stop: &CancellationToken) -> Result<RunOutput, RunFailure> {
        let started = Instant::now();
        let mut run = Run::default();
        let outcome = self.run_steps(spec, &mut run, stop).await;
        if spec.engine == Engine::Auto {
            if let Some(handover) = needs_browser(spec, &run, outcome.as_ref().err()).await {
                return Err(RunFailure {
                    error: handover,
                    artifacts: Vec::new(),
                });
            }
        }
        if let Err(error) = outcome {
            return Err(RunFailure {
                error,
                artifacts: run.into_artifacts(),
            });
        }
        let mut timings = std::mem::take(&mut run.timings);
        timings.total_ms = millis(started.elapsed());
        let extracted = std::mem::take(&mut run.extracted);
        let page = run.page.take().expect("a finished run has a page");
        let artifacts = run.into_artifacts();
        Ok(RunOutput {
            result: JobResult {
                extracted,
                status: page.data.status,
                final_url: page
                    .data
                    .final_url
                    .as_ref()
                    .map_or_else(String::new, Url::to_string),
                timings,
                engine: RunEngine::Http,
                engine_reason: None,
                artifacts: artifacts.iter().map(artifact_ref).collect(),
            },
            artifacts,
        })
    }
}

/// For an `auto` job: whether what the HTTP engine saw means the page needs
/// a browser. It does when an extraction came back empty, or a check of the
/// page's text or elements failed, on a page that renders on the client.
async fn needs_browser(
    spec: &JobSpec,
    run: &Run,
    failure: Option<&EngineError>,
) -> Option<EngineError> {
    let page = run.page.as_ref()?;
    let suspicious = match failure {
        Some(error) => matches!(error.failure(), StepFailure::AssertFailed { .. }),
        None => run.extracted.values().any(is_empty_value),
    };
    if !suspicious {
        return None;
    }
    let raw = page.data.raw.clone();
    let reason = tokio::task::spawn_blocking(move || {
        crate::auto::client_rendered(&String::from_utf8_lossy(&raw))
    })
    .await
    .ok()??;
    let step = match failure {
        Some(error) => error.step().unwrap_or(0),
        None => spec
            .steps
            .iter()
            .position(|step| matches!(step, Step::Extract { .. }))
            .unwrap_or(0),
    };
    Some(EngineError::needs_browser(
        step,
        format!("the page renders on the client: {reason}"),
    ))
}

fn is_empty_value(value: &ExtractedValue) -> bool {
    match value {
        ExtractedValue::One(text) => text.as_deref().is_none_or(|text| text.trim().is_empty()),
        ExtractedValue::List(items) => items.is_empty(),
        ExtractedValue::Records(records) => records.is_empty(),
        ExtractedValue::Json(value) => value.is_null(),
    }
}

fn artifact_ref(artifact: &Artifact) -> ArtifactRef {
    ArtifactRef {
        name: artifact.name.clone(),
        content_type: artifact.content_type.clone(),
        size: u64::try_from(artifact.bytes.len()).unwrap_or(u64::MAX),
        sha256: artifact.sha256(),
    }
}
