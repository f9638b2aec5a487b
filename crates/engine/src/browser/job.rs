//! One browser job from start to end: a fresh incognito context, its page,
//! the steps in order, what the run keeps, and the context's disposal.
//!
//! The context is created when the first step needs it and disposed on
//! every way out (success, failure, timeout, cancellation), which also
//! closes its page; a context that will not go away retires the browser.
//! Every run keeps the final HTML (`page.html`) and the console log
//! (`console.json`); a failed run also keeps the viewport as it was when it
//! failed (`failure.png`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use accord_model::{
    ArtifactName, DownloadSource, ExtractedValue, JobResult, JobSpec, RunEngine, Step, TargetUrl,
    Timings, WaitUntil,
};
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, DisposeBrowserContextParams,
};
use tokio_util::sync::CancellationToken;

use super::capture::{self, ClickDownload, Shot};
use super::egress::JobProxy;
use super::error::BrowserFailure;
use super::extract::{self, value_bytes};
use super::network::{NetworkEvents, Recorder};
use super::page::{Interrupts, Loaded, OpenParams, PageSession};
use super::pool::Lease;
use super::{actions, BrowserConfig};
use crate::{ActiveCapture, Artifact, EngineError, StepFailure};

/// Longest wait for a context to be disposed; past it the browser is
/// considered broken.
const DISPOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Time allowed for the failure screenshot and the final HTML, when the run
/// failed on its own (a stopped run gets less: it must end promptly).
const KEEP_TIMEOUT: Duration = Duration::from_secs(5);
const KEEP_TIMEOUT_STOPPED: Duration = Duration::from_millis(400);

/// A job in progress.
#[derive(Debug)]
pub(super) struct Job<'a> {
    config: &'a BrowserConfig,
    lease: Lease,
    interrupts: Interrupts,
    /// The job's timeout, which bounds `wait_for` steps without their own.
    job_timeout: Duration,
    context: Option<BrowserContextId>,
    /// The job's own egress proxy (its domain policies, what the guard
    /// refused), for its context; `None`: the browser's shared proxy.
    proxy: Option<JobProxy>,
    page: Option<PageSession>,
    extracted: BTreeMap<String, ExtractedValue>,
    extracted_bytes: usize,
    artifacts: Vec<Artifact>,
    timings: Timings,
    /// How long the last `navigate` took, for `assert` `max_load_ms`.
    last_load_ms: Option<u64>,
    /// An optional `follow` found no link: the remaining steps are skipped.
    ended: bool,
    /// Captures started before there was a page to record.
    pending_captures: Vec<ActiveCapture>,
    /// Records the page's network once a capture has started.
    recorder: Option<Recorder>,
}

/// The run's end, before its artifacts are added.
pub(super) type Outcome = Result<JobResult, EngineError>;

impl<'a> Job<'a> {
    pub fn new(
        config: &'a BrowserConfig,
        lease: Lease,
        stop: &CancellationToken,
        spec: &JobSpec,
        proxy: Option<JobProxy>,
    ) -> Self {
        let interrupts = Interrupts {
            stop: stop.clone(),
            gone: lease.gone.clone(),
            crashed: CancellationToken::new(),
        };
        Self {
            config,
            lease,
            interrupts,
            job_timeout: Duration::from_secs(spec.timeout_seconds.into()),
            context: None,
            proxy,
            page: None,
            extracted: BTreeMap::new(),
            extracted_bytes: 0,
            artifacts: Vec::new(),
            timings: Timings::default(),
            last_load_ms: None,
            ended: false,
            pending_captures: Vec::new(),
            recorder: None,
        }
    }

    /// Runs every step, keeps the run's artifacts, disposes the context.
    pub async fn run(mut self, spec: &JobSpec) -> (Outcome, Vec<Artifact>) {
        let started = Instant::now();
        let outcome = self.run_steps(&spec.steps).await;
        let outcome = outcome.map(|()| {
            self.timings.total_ms = millis(started.elapsed());
            let loaded = self.page.as_ref().map(|page| page.loaded.clone());
            let Loaded { status, url } = loaded.unwrap_or(Loaded {
                status: 0,
                url: String::new(),
            });
            JobResult {
                extracted: std::mem::take(&mut self.extracted),
                status,
                final_url: url,
                timings: std::mem::take(&mut self.timings),
                engine: RunEngine::Browser,
                engine_reason: None,
                artifacts: Vec::new(),
            }
        });
        self.keep_captures().await;
        self.keep_evidence(outcome.is_err()).await;
        self.close().await;
        (outcome, std::mem::take(&mut self.artifacts))
    }

    async fn run_steps(&mut self, steps: &[Step]) -> Result<(), EngineError> {
        if steps.is_empty() {
            return Err(EngineError::whole_job(StepFailure::NoSteps));
        }
        // A capture before the first navigate must see its load: the page is
        // then opened blank and navigated.
        let capture_first = steps
            .iter()
            .take_while(|step| !matches!(step, Step::Navigate { .. }))
            .any(|step| matches!(step, Step::CaptureNetwork { .. }));
        for (index, step) in steps.iter().enumerate() {
            if let Some(recorder) = &self.recorder {
                // A step may leave the page, and the browser forgets the
                // bodies of the document it leaves: take them first.
                recorder.sync().await;
            }
            let step_started = Instant::now();
            let outcome = self.run_step(index, step, capture_first).await;
            let elapsed = millis(step_started.elapsed());
            self.timings.steps_ms.push(elapsed);
            match step {
                Step::Navigate { .. } => {
                    self.timings.fetch_ms += elapsed;
                    if outcome.is_ok() {
                        self.last_load_ms = Some(elapsed);
                    }
                }
                _ => self.timings.process_ms += elapsed,
            }
            if let Err(failure) = outcome {
                if !matches!(failure, BrowserFailure::Stopped) {
                    tracing::debug!(step = index, action = step.action(), error = %failure, "browser step failed");
                }
                let failure = match failure {
                    // The same failure, code and message as on the HTTP engine.
                    BrowserFailure::TargetBlocked(blocked) => StepFailure::Refused(blocked),
                    other => StepFailure::Browser(other),
                };
                return Err(EngineError::at(index, step, failure));
            }
            if self.ended {
                // An optional `follow` found no link: the job ends here.
                break;
            }
        }
        Ok(())
    }

    /// Loads `url` as a `navigate` does, within the navigation timeout: a
    /// 429 or 5xx fails the step unless `accept_error_status`. Behind the
    /// job's own proxy, what the URL alone tells is refused first, and a
    /// load the guard refused (the page, or a hop it redirected to) fails
    /// with the guard's refusal.
    async fn load(
        &mut self,
        url: &TargetUrl,
        wait_until: WaitUntil,
        open_with_url: bool,
        accept_error_status: bool,
    ) -> Result<(), BrowserFailure> {
        let mark = match &self.proxy {
            Some(proxy) => {
                proxy
                    .guard
                    .check_url(url.as_url())
                    .map_err(BrowserFailure::TargetBlocked)?;
                proxy.hook.mark()
            }
            None => 0,
        };
        let timeout = self.config.navigate_timeout;
        let load = self.navigate(url.as_str(), wait_until, open_with_url);
        let loaded = match tokio::time::timeout(timeout, load).await {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(failure @ BrowserFailure::Network { .. })) => {
                let refused = self
                    .proxy
                    .as_ref()
                    .and_then(|p| p.hook.refused_tunnel(mark));
                return Err(refused.map_or(failure, BrowserFailure::TargetBlocked));
            }
            Ok(Err(failure)) => return Err(failure),
            Err(_elapsed) => {
                return Err(BrowserFailure::Timeout {
                    what: format!("loading {url}"),
                    after: timeout,
                })
            }
        };
        if let Some(proxy) = &self.proxy {
            if let Some(blocked) = proxy
                .hook
                .refused_document(mark, loaded.status, &loaded.url)
            {
                return Err(BrowserFailure::TargetBlocked(blocked));
            }
        }
        let error_status = loaded.status == 429 || loaded.status >= 500;
        if error_status && !accept_error_status {
            return Err(BrowserFailure::ErrorStatus {
                status: loaded.status,
                url: loaded.url,
            });
        }
        Ok(())
    }

    async fn run_step(
        &mut self,
        index: usize,
        step: &Step,
        capture_first: bool,
    ) -> Result<(), BrowserFailure> {
        let element_timeout = self.config.element_timeout;
        match step {
            Step::Navigate {
                url,
                wait_until,
                accept_error_status,
            } => {
                let first = self.page.is_none();
                self.load(
                    url,
                    *wait_until,
                    first && !capture_first,
                    *accept_error_status,
                )
                .await
            }
            Step::WaitFor { timeout_ms, .. } => {
                let condition = step
                    .wait_condition()
                    .expect("a wait_for step")
                    .map_err(|err| BrowserFailure::Refused(err.to_string()))?;
                let timeout = timeout_ms.map_or(self.job_timeout, Duration::from_millis);
                let page = self.page(step)?;
                actions::wait_for(page, condition, timeout, &self.interrupts).await
            }
            Step::Follow { selector, optional } => {
                let page = self.page(step)?;
                let url = match actions::link(page, selector, &self.interrupts).await {
                    Ok(Some(url)) => url,
                    Ok(None) if *optional => {
                        self.ended = true;
                        return Ok(());
                    }
                    Ok(None) => {
                        return Err(BrowserFailure::NoElement {
                            selector: selector.to_string(),
                            waited: Duration::ZERO,
                        })
                    }
                    Err(BrowserFailure::Element { .. }) if *optional => {
                        self.ended = true;
                        return Ok(());
                    }
                    Err(failure) => return Err(failure),
                };
                let url = TargetUrl::parse(&url).map_err(|err| {
                    BrowserFailure::Refused(format!("the link {url} cannot be followed: {err}"))
                })?;
                self.load(&url, WaitUntil::Load, false, false).await
            }
            Step::Click { selector } => {
                let page = page_mut(&mut self.page, step)?;
                page.forget_loads();
                actions::click(page, selector, element_timeout, &self.interrupts).await?;
                self.settle().await
            }
            Step::Fill { selector, value } => {
                let page = self.page(step)?;
                actions::fill(page, selector, value, element_timeout, &self.interrupts).await
            }
            Step::Select { selector, value } => {
                let page = self.page(step)?;
                actions::select(page, selector, value, element_timeout, &self.interrupts).await
            }
            Step::Check { selector } | Step::Uncheck { selector } => {
                let checked = matches!(step, Step::Check { .. });
                let page = self.page(step)?;
                actions::set_checked(page, selector, checked, element_timeout, &self.interrupts)
                    .await
            }
            Step::Press { key, selector } => {
                let page = page_mut(&mut self.page, step)?;
                page.forget_loads();
                actions::press(
                    page,
                    key,
                    selector.as_ref(),
                    element_timeout,
                    &self.interrupts,
                )
                .await?;
                self.settle().await
            }
            Step::Submit { selector } => {
                let page = page_mut(&mut self.page, step)?;
                page.forget_loads();
                actions::submit(page, selector.as_ref(), element_timeout, &self.interrupts).await?;
                self.settle().await
            }
            Step::Scroll { max_rounds } => {
                let rounds = (*max_rounds).min(self.config.limits.max_scroll_rounds);
                let page = self.page(step)?;
                actions::scroll(page, rounds, &self.interrupts).await?;
                Ok(())
            }
            Step::Hover { selector } => {
                let page = self.page(step)?;
                actions::hover(page, selector, element_timeout, &self.interrupts).await
            }
            Step::Extract { fields } => {
                let budget = self
                    .config
                    .limits
                    .max_extracted_bytes
                    .saturating_sub(self.extracted_bytes);
                let page = self.page(step)?;
                let values = extract::extract(page, fields, budget, &self.interrupts).await?;
                for (name, value) in values {
                    self.keep_value(name, value)?;
                }
                Ok(())
            }
            Step::Screenshot {
                selector,
                full_page,
                width,
                height,
                ..
            } => {
                let shot = Shot {
                    selector: selector.as_ref(),
                    full_page: *full_page,
                    width: *width,
                    height: *height,
                };
                let page = self.page(step)?;
                let png = capture::screenshot(
                    page,
                    shot,
                    self.config.window,
                    self.config.limits.max_screenshot_height,
                    element_timeout,
                    &self.interrupts,
                )
                .await?;
                self.keep(step, index, "image/png", png);
                Ok(())
            }
            Step::CaptureNetwork {
                url_pattern,
                max_body_bytes,
                ..
            } => {
                let name = step
                    .artifact_name(index)
                    .expect("a capture has an artifact name");
                let capture = ActiveCapture::new(name, url_pattern.clone(), *max_body_bytes);
                match (&self.recorder, &self.page) {
                    (Some(recorder), _) => recorder.add(capture),
                    (None, Some(page)) => {
                        let events = self
                            .interrupts
                            .cdp("watch the network", NetworkEvents::listen(&page.page))
                            .await?;
                        self.recorder =
                            Some(Recorder::start(page.page.clone(), events, vec![capture]));
                    }
                    // Started with the page, before its first load.
                    (None, None) => self.pending_captures.push(capture),
                }
                Ok(())
            }
            Step::Download { max_bytes, .. } => {
                let source = step
                    .download_source()
                    .expect("a download step")
                    .map_err(|err| BrowserFailure::Refused(err.to_string()))?;
                let max_bytes = (*max_bytes).min(self.config.limits.max_download_bytes);
                let page = self.page(step)?;
                let downloaded = match source {
                    DownloadSource::Url(url) => {
                        capture::download_url(page, url.as_str(), max_bytes, &self.interrupts)
                            .await?
                    }
                    DownloadSource::Element(selector) => {
                        let context = self.context.as_ref().ok_or(BrowserFailure::NoPage {
                            action: step.action(),
                        })?;
                        let dir = self.download_dir(index);
                        let download = ClickDownload {
                            browser: &self.lease.browser,
                            context,
                            dir: &dir,
                            selector,
                            max_bytes,
                            start_timeout: self.config.navigate_timeout,
                        };
                        capture::download_click(page, download, &self.interrupts).await?
                    }
                };
                self.keep(step, index, &downloaded.content_type, downloaded.bytes);
                Ok(())
            }
            Step::Evaluate { expression, field } => {
                let page = self.page(step)?;
                let value = page
                    .evaluate(expression, "evaluate the expression", &self.interrupts)
                    .await?
                    .map_err(|message| BrowserFailure::Script { message })?;
                self.keep_value(field.clone(), ExtractedValue::from_json(value))
            }
            Step::Assert {
                status,
                text,
                text_absent,
                selector,
                selector_absent,
                max_load_ms,
                no_console_errors,
            } => {
                let checks = super::assert::Checks {
                    status: *status,
                    text: text.as_deref(),
                    text_absent: text_absent.as_deref(),
                    selector: selector.as_ref(),
                    selector_absent: selector_absent.as_ref(),
                    max_load_ms: *max_load_ms,
                    no_console_errors: *no_console_errors,
                };
                let last_load_ms = self.last_load_ms;
                let page = self.page(step)?;
                super::assert::check(page, checks, last_load_ms, &self.interrupts).await
            }
            Step::SaveHtml { .. } => {
                let page = self.page(step)?;
                let html = capture::html(page, self.config.limits.max_html_bytes, &self.interrupts)
                    .await?;
                self.keep(step, index, "text/html; charset=utf-8", html.into_bytes());
                Ok(())
            }
        }
    }

    /// Loads a URL: the first time, by opening the page with it (or blank
    /// then navigating, when a load must be watched from its start or must
    /// not wait for `load`).
    async fn navigate(
        &mut self,
        url: &str,
        wait_until: WaitUntil,
        open_with_url: bool,
    ) -> Result<Loaded, BrowserFailure> {
        if let Some(page) = &mut self.page {
            return page.navigate(url, wait_until, &self.interrupts).await;
        }
        let context = self.context().await?;
        let with_url = open_with_url && wait_until == WaitUntil::Load;
        let params = OpenParams {
            browser: &self.lease.browser,
            context: &context,
            url: with_url.then_some(url),
            max_console_entries: self.config.limits.max_console_entries,
        };
        let mut page = PageSession::open(params, &mut self.interrupts).await?;
        if !self.pending_captures.is_empty() {
            let events = self
                .interrupts
                .cdp("watch the network", NetworkEvents::listen(&page.page))
                .await?;
            let captures = std::mem::take(&mut self.pending_captures);
            self.recorder = Some(Recorder::start(page.page.clone(), events, captures));
        }
        let loaded = if with_url {
            page.check_first_load(url, &self.interrupts).await
        } else {
            page.navigate(url, wait_until, &self.interrupts).await
        };
        self.page = Some(page);
        loaded
    }

    /// After an action that may have started a navigation.
    async fn settle(&mut self) -> Result<(), BrowserFailure> {
        let timeout = self.config.navigate_timeout;
        let Some(page) = &mut self.page else {
            return Ok(());
        };
        if let Some(loaded) = page.settle_after_action(&self.interrupts, timeout).await? {
            if loaded.url.starts_with("chrome-error://") {
                return Err(BrowserFailure::Network {
                    url: "the page the action opened".to_owned(),
                    code: "it failed to load".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The job's context, created on first use.
    async fn context(&mut self) -> Result<BrowserContextId, BrowserFailure> {
        if let Some(context) = &self.context {
            return Ok(context.clone());
        }
        let mut params = CreateBrowserContextParams::default();
        if let Some(proxy) = &self.proxy {
            // The context's own proxy replaces the browser's; loopback must
            // not bypass it either (Chromium's implicit bypass rules).
            params.proxy_server = Some(proxy.server.clone());
            params.proxy_bypass_list = Some("<-loopback>".to_owned());
        }
        let created = self
            .interrupts
            .cdp(
                "create the job's context",
                self.lease.browser.execute(params),
            )
            .await?;
        let context = created.result.browser_context_id;
        self.context = Some(context.clone());
        Ok(context)
    }

    fn page(&self, step: &Step) -> Result<&PageSession, BrowserFailure> {
        self.page.as_ref().ok_or(BrowserFailure::NoPage {
            action: step.action(),
        })
    }

    /// Adds an extracted value, within the job's extraction budget.
    fn keep_value(&mut self, name: String, value: ExtractedValue) -> Result<(), BrowserFailure> {
        let limit = self.config.limits.max_extracted_bytes;
        let bytes = value_bytes(&value);
        let replaced = self.extracted.get(&name).map_or(0, value_bytes);
        let total = self.extracted_bytes - replaced + bytes;
        if total > limit {
            return Err(BrowserFailure::TooLarge {
                what: "the extracted text".to_owned(),
                limit: limit as u64,
            });
        }
        self.extracted_bytes = total;
        self.extracted.insert(name, value);
        Ok(())
    }

    /// Keeps a step's artifact under the step's name.
    fn keep(&mut self, step: &Step, index: usize, content_type: &str, bytes: Vec<u8>) {
        let name = step
            .artifact_name(index)
            .expect("a step that keeps a file has an artifact name");
        self.keep_named(name, content_type, bytes);
    }

    fn keep_named(&mut self, name: ArtifactName, content_type: &str, bytes: Vec<u8>) {
        self.artifacts.retain(|kept| kept.name != name);
        self.artifacts
            .push(Artifact::new(name, content_type.to_owned(), bytes));
    }

    fn download_dir(&self, index: usize) -> PathBuf {
        // Unique per job and step within the browser's own directory, which
        // goes away with the browser.
        self.lease
            .dir
            .join("downloads")
            .join(format!("job-{}-step-{index}", self.lease.serial))
    }

    /// Keeps what each `capture_network` step recorded (also when the run
    /// failed: the requests up to the failure are evidence too).
    async fn keep_captures(&mut self) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        let budget = if self.interrupts.stop.is_cancelled() {
            KEEP_TIMEOUT_STOPPED
        } else {
            KEEP_TIMEOUT
        };
        match tokio::time::timeout(budget, recorder.finish()).await {
            Ok(captures) => {
                for capture in captures {
                    let artifact = capture.into_artifact();
                    self.artifacts.retain(|kept| kept.name != artifact.name);
                    self.artifacts.push(artifact);
                }
            }
            Err(_elapsed) => tracing::warn!("network captures were not collected in time"),
        }
    }

    /// Keeps the final HTML, the console log and, when the run failed, the
    /// screenshot of the moment of failure, as far as the page still
    /// answers (within a short time when the run was stopped).
    async fn keep_evidence(&mut self, failed: bool) {
        let Some(page) = &self.page else {
            return;
        };
        if self.interrupts.gone.is_cancelled() || self.interrupts.crashed.is_cancelled() {
            return;
        }
        let budget = if self.interrupts.stop.is_cancelled() {
            KEEP_TIMEOUT_STOPPED
        } else {
            KEEP_TIMEOUT
        };
        // The run may have been stopped: these calls must not be.
        let evidence = Interrupts {
            stop: CancellationToken::new(),
            ..self.interrupts.clone()
        };
        let max_html = self.config.limits.max_html_bytes;
        let gather = async {
            let screenshot = if failed {
                capture::viewport_png(page, &evidence).await.ok()
            } else {
                None
            };
            let html = capture::html(page, max_html, &evidence).await.ok();
            (screenshot, html)
        };
        let (screenshot, html) = tokio::time::timeout(budget, gather)
            .await
            .unwrap_or_default();
        let console = page.console.snapshot().await;
        if let Some(png) = screenshot {
            self.keep_named(reserved("failure.png"), "image/png", png);
        }
        if let Some(html) = html {
            self.keep_named(
                reserved("page.html"),
                "text/html; charset=utf-8",
                html.into_bytes(),
            );
        }
        match serde_json::to_vec_pretty(&console) {
            Ok(json) => self.keep_named(reserved("console.json"), "application/json", json),
            Err(err) => tracing::warn!(error = %err, "could not write the console log"),
        }
    }

    /// Disposes the job's context (closing its page); a browser that does
    /// not answer is retired.
    async fn close(&mut self) {
        self.page = None;
        let Some(context) = self.context.take() else {
            return;
        };
        if self.interrupts.gone.is_cancelled() {
            // Said with the slot given back, so the pool never hands the dead
            // browser to the next job before it hears of the exit itself.
            self.lease.mark_broken();
            return;
        }
        let dispose = self
            .lease
            .browser
            .execute(DisposeBrowserContextParams::new(context));
        match tokio::time::timeout(DISPOSE_TIMEOUT, dispose).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "could not dispose a job's browser context; retiring the browser");
                self.lease.mark_broken();
            }
            Err(_elapsed) => {
                tracing::warn!("disposing a job's browser context timed out; retiring the browser");
                self.lease.mark_broken();
            }
        }
    }
}

/// The page, borrowed apart from the rest of the job.
fn page_mut<'p>(
    page: &'p mut Option<PageSession>,
    step: &Step,
) -> Result<&'p mut PageSession, BrowserFailure> {
    page.as_mut().ok_or(BrowserFailure::NoPage {
        action: step.action(),
    })
}

fn reserved(name: &str) -> ArtifactName {
    ArtifactName::new(name).expect("reserved artifact names are valid")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
