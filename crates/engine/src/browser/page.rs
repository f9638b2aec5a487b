//! A job's page: opening it in the job's context, loading URLs, running
//! Accord's page scripts, and noticing when something ends it early.
//!
//! Everything the job awaits goes through [`Interrupts::guard`], so a run
//! stops at once when the worker stops it, when the browser crashes, or
//! when the page's renderer does (a command to a crashed renderer would
//! otherwise wait for its protocol timeout).
//!
//! Loads: the first `navigate` creates the page with its URL (one step
//! fewer than opening a blank page and navigating it); later ones navigate
//! the page. chromiumoxide answers `Page.navigate` only once the page's
//! `load` event has fired, which is what `load` asks for; `networkidle`
//! then waits for Chromium's own `networkIdle` lifecycle event, and
//! `domcontentloaded`, which must not wait for `load`, is started from the
//! page (`location.assign`) and waits for `DOMContentLoaded` alone.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use accord_model::WaitUntil;
use chromiumoxide::browser::Browser;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed;
use chromiumoxide::cdp::browser_protocol::network::{EventResponseReceived, ResourceType};
use chromiumoxide::cdp::browser_protocol::page::{
    EventFrameStartedLoading, EventFrameStoppedLoading, EventLifecycleEvent, FrameId,
    NavigateParams,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateTargetParams, EventTargetCrashed as BrowserTargetCrashed, GetTargetInfoParams,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    DisableParams as RuntimeDisable, EnableParams as RuntimeEnable, EvaluateParams,
    EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::error::CdpError;
use chromiumoxide::listeners::EventStream;
use chromiumoxide::{Command, Page};
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::console::Console;
use super::error::BrowserFailure;

/// Accord's page helpers (see the file for what each operation answers).
const PAGE_JS: &str = include_str!("page.js");

/// How long an action (click, submit, a key) is given to start a
/// navigation before the next step runs on the page as it is.
const NAVIGATION_GRACE: Duration = Duration::from_millis(150);

/// What ends a job's waits early.
#[derive(Debug, Clone)]
pub(super) struct Interrupts {
    /// The worker stopped the run (timeout, cancellation, shutdown).
    pub stop: CancellationToken,
    /// The browser is gone.
    pub gone: CancellationToken,
    /// The page's renderer crashed (a fresh token until a page is open).
    pub crashed: CancellationToken,
}

impl Interrupts {
    /// Runs `work` unless something ends the job first.
    pub async fn guard<T>(&self, work: impl Future<Output = T>) -> Result<T, BrowserFailure> {
        tokio::select! {
            biased;
            () = self.gone.cancelled() => Err(BrowserFailure::BrowserCrashed),
            () = self.crashed.cancelled() => Err(BrowserFailure::RendererCrashed),
            () = self.stop.cancelled() => Err(BrowserFailure::Stopped),
            value = work => Ok(value),
        }
    }

    /// Runs a protocol call; its failure becomes `Protocol { action }`,
    /// with Chromium's words in the log.
    pub async fn cdp<T>(
        &self,
        action: &'static str,
        call: impl Future<Output = Result<T, CdpError>>,
    ) -> Result<T, BrowserFailure> {
        match self.guard(call).await? {
            Ok(value) => Ok(value),
            Err(err) => Err(self.classify(action, &err)),
        }
    }

    /// A protocol error: the connection's end means the browser is gone;
    /// anything else is logged and reported without Chromium's words.
    pub fn classify(&self, action: &'static str, err: &CdpError) -> BrowserFailure {
        if self.gone.is_cancelled() || matches!(err, CdpError::ChannelSendError(_)) {
            return BrowserFailure::BrowserCrashed;
        }
        if self.crashed.is_cancelled() {
            return BrowserFailure::RendererCrashed;
        }
        if matches!(err, CdpError::Timeout) {
            return BrowserFailure::Timeout {
                what: format!("the browser's answer to {action}"),
                after: Duration::ZERO,
            };
        }
        tracing::debug!(action, error = %err, "browser protocol call failed");
        BrowserFailure::Protocol { action }
    }
}

/// What `Page.navigate` said.
#[derive(Debug)]
struct Navigated {
    error_text: Option<String>,
    loader_id: Option<String>,
    /// An error status whose empty body Chromium replaced with its error
    /// page: a load all the same, with that status.
    error_page: Option<Loaded>,
}

/// What a page load ended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Loaded {
    pub status: u16,
    pub url: String,
}

/// An open page and the event streams the job reads.
#[derive(Debug)]
pub(super) struct PageSession {
    pub page: Page,
    pub main_frame: FrameId,
    pub console: Console,
    lifecycle: EventStream<EventLifecycleEvent>,
    started_loading: EventStream<EventFrameStartedLoading>,
    stopped_loading: EventStream<EventFrameStoppedLoading>,
    /// The last load.
    pub loaded: Loaded,
}

/// Where and how to open a job's page.
#[derive(Debug, Clone, Copy)]
pub(super) struct OpenParams<'a> {
    pub browser: &'a Arc<Browser>,
    pub context: &'a BrowserContextId,
    /// Create the page with this URL already loaded (its `load` event fired);
    /// `None` opens a blank page.
    pub url: Option<&'a str>,
    pub max_console_entries: usize,
}

impl PageSession {
    /// Opens a page in the job's context and starts watching it. Sets
    /// `interrupts.crashed` to the new page's crash token.
    pub async fn open(
        params: OpenParams<'_>,
        interrupts: &mut Interrupts,
    ) -> Result<Self, BrowserFailure> {
        let target = CreateTargetParams {
            browser_context_id: Some(params.context.clone()),
            ..CreateTargetParams::new(params.url.unwrap_or("about:blank"))
        };
        // Until the page exists, only the browser says when a renderer
        // crashes: any crash of a page in this job's context ends the wait
        // (chromiumoxide would wait for a load that never comes).
        let mut crashes_in_browser = interrupts
            .cdp(
                "watch the page",
                params.browser.event_listener::<BrowserTargetCrashed>(),
            )
            .await?;
        let crash_in_context = async {
            while let Some(crash) = crashes_in_browser.next().await {
                let info = GetTargetInfoParams {
                    target_id: Some(crash.target_id.clone()),
                };
                // A target already gone is no longer ours to wait for.
                if let Ok(info) = params.browser.execute(info).await {
                    if info.result.target_info.browser_context_id.as_ref() == Some(params.context) {
                        return;
                    }
                }
            }
            std::future::pending::<()>().await;
        };
        let page = tokio::select! {
            page = interrupts.cdp("open a page", params.browser.new_page(target)) => page?,
            () = crash_in_context => return Err(BrowserFailure::RendererCrashed),
        };
        drop(crashes_in_browser);
        let crashed = CancellationToken::new();
        let listen = async {
            let crashes = page.event_listener::<EventTargetCrashed>().await?;
            let calls = page.event_listener::<EventConsoleApiCalled>().await?;
            let exceptions = page.event_listener::<EventExceptionThrown>().await?;
            let lifecycle = page.event_listener::<EventLifecycleEvent>().await?;
            let started = page.event_listener::<EventFrameStartedLoading>().await?;
            let stopped = page.event_listener::<EventFrameStoppedLoading>().await?;
            let main_frame = page.mainframe().await?;
            Ok::<_, CdpError>((
                crashes, calls, exceptions, lifecycle, started, stopped, main_frame,
            ))
        };
        let (
            mut crashes,
            calls,
            exceptions,
            lifecycle,
            started_loading,
            stopped_loading,
            main_frame,
        ) = interrupts.cdp("watch the page", listen).await?;
        tokio::spawn({
            let crashed = crashed.clone();
            async move {
                // Ends with `None` when the page goes away normally.
                if crashes.next().await.is_some() {
                    crashed.cancel();
                }
            }
        });
        interrupts.crashed = crashed;
        let main_frame = main_frame.ok_or(BrowserFailure::Protocol {
            action: "find the page's main frame",
        })?;
        let console = Console::start(calls, exceptions, params.max_console_entries);
        let mut session = Self {
            page,
            main_frame,
            console,
            lifecycle,
            started_loading,
            stopped_loading,
            loaded: Loaded {
                status: 0,
                url: String::new(),
            },
        };
        // The page loaded (and maybe logged) before the listeners above
        // existed. Turning the Runtime domain off and on makes Chromium
        // send the messages it kept again, so console.json and
        // `no_console_errors` see the first load too.
        interrupts
            .cdp(
                "read the console",
                session.page.execute(RuntimeDisable::default()),
            )
            .await?;
        interrupts
            .cdp(
                "read the console",
                session.page.execute(RuntimeEnable::default()),
            )
            .await?;
        if params.url.is_some() {
            session.loaded = session.read_loaded(interrupts).await?;
        }
        Ok(session)
    }

    /// Loads `url` and waits as `wait_until` asks. A load that fails (DNS,
    /// refused connection, blocked) is an error; an error status is not
    /// (the caller decides).
    pub async fn navigate(
        &mut self,
        url: &str,
        wait_until: WaitUntil,
        interrupts: &Interrupts,
    ) -> Result<Loaded, BrowserFailure> {
        drain(&mut self.lifecycle);
        let error_text = match wait_until {
            WaitUntil::Load | WaitUntil::NetworkIdle => {
                let navigated = self.navigate_protocol(url, interrupts).await?;
                if let Some(loaded) = navigated.error_page {
                    self.loaded = loaded.clone();
                    return Ok(loaded);
                }
                if wait_until == WaitUntil::NetworkIdle && navigated.error_text.is_none() {
                    if let Some(loader) = &navigated.loader_id {
                        let frame = self.main_frame.clone();
                        interrupts
                            .guard(self.lifecycle_event(&frame, loader, "networkIdle"))
                            .await?;
                    }
                }
                navigated.error_text
            }
            WaitUntil::DomContentLoaded => {
                // `location.assign` runs as the page: it returns before the
                // new document exists, which DOMContentLoaded of a new
                // loader then marks.
                let previous_loader = self.current_loader();
                let script = format!("location.assign({})", js_string(url));
                self.evaluate_raw(&script, "load the page", interrupts)
                    .await?;
                interrupts
                    .guard(self.dom_content_loaded_after(previous_loader))
                    .await?;
                None
            }
        };
        let loaded = self.read_loaded(interrupts).await?;
        match error_text {
            Some(code) if !code.is_empty() => Err(BrowserFailure::from_net_error(url, &code)),
            _ if loaded.url.starts_with("chrome-error://") => {
                // Only a page-initiated load lands here (`domcontentloaded`):
                // ask Chromium again, the protocol way, for the reason.
                self.failure_reason(url, interrupts).await
            }
            _ => {
                self.loaded = loaded.clone();
                Ok(loaded)
            }
        }
    }

    /// After the first load (the page was created with its URL): an error
    /// page means the load failed; navigating again, the protocol way, says
    /// why.
    pub async fn check_first_load(
        &mut self,
        url: &str,
        interrupts: &Interrupts,
    ) -> Result<Loaded, BrowserFailure> {
        if self.loaded.url.starts_with("chrome-error://") {
            return self.failure_reason(url, interrupts).await;
        }
        Ok(self.loaded.clone())
    }

    async fn failure_reason(
        &mut self,
        url: &str,
        interrupts: &Interrupts,
    ) -> Result<Loaded, BrowserFailure> {
        let navigated = self.navigate_protocol(url, interrupts).await?;
        if let Some(loaded) = navigated.error_page {
            self.loaded = loaded.clone();
            return Ok(loaded);
        }
        match navigated.error_text {
            Some(code) if !code.is_empty() => Err(BrowserFailure::from_net_error(url, &code)),
            // It loaded this time.
            _ => {
                let loaded = self.read_loaded(interrupts).await?;
                self.loaded = loaded.clone();
                Ok(loaded)
            }
        }
    }

    /// `Page.navigate`, answered once the page's `load` event has fired.
    /// An error status with an empty body shows Chromium's error page
    /// (`ERR_HTTP_RESPONSE_CODE_FAILURE`): the status then comes from the
    /// document's response, watched for the length of the call.
    async fn navigate_protocol(
        &mut self,
        url: &str,
        interrupts: &Interrupts,
    ) -> Result<Navigated, BrowserFailure> {
        let mut responses = interrupts
            .cdp(
                "watch the load",
                self.page.event_listener::<EventResponseReceived>(),
            )
            .await?;
        let navigated = interrupts
            .cdp("load the page", self.page.execute(NavigateParams::new(url)))
            .await?
            .result;
        let mut document = None;
        while let Some(Some(event)) = responses.next().now_or_never() {
            let main = event.frame_id.as_ref() == Some(&self.main_frame);
            if main && event.r#type == ResourceType::Document {
                document = Some(Loaded {
                    status: u16::try_from(event.response.status).unwrap_or(0),
                    url: event.response.url.clone(),
                });
            }
        }
        let error_page = match (&navigated.error_text, document) {
            (Some(code), Some(document))
                if code.ends_with("ERR_HTTP_RESPONSE_CODE_FAILURE") && document.status >= 400 =>
            {
                Some(document)
            }
            _ => None,
        };
        Ok(Navigated {
            error_text: navigated.error_text,
            loader_id: navigated.loader_id.map(|loader| loader.inner().clone()),
            error_page,
        })
    }

    /// After an action that may navigate (click, submit, a key): waits a
    /// moment for a navigation of the main frame to start, and if one did,
    /// for it to finish. `Some` with the new page when one loaded.
    pub async fn settle_after_action(
        &mut self,
        interrupts: &Interrupts,
        timeout: Duration,
    ) -> Result<Option<Loaded>, BrowserFailure> {
        let main = self.main_frame.clone();
        let started = {
            let started_loading = &mut self.started_loading;
            let wait = async {
                while let Some(event) = started_loading.next().await {
                    if event.frame_id == main {
                        return true;
                    }
                }
                false
            };
            matches!(
                tokio::time::timeout(NAVIGATION_GRACE, interrupts.guard(wait)).await,
                Ok(Ok(true))
            )
        };
        if !started {
            return Ok(None);
        }
        let stopped_loading = &mut self.stopped_loading;
        let wait = async {
            while let Some(event) = stopped_loading.next().await {
                if event.frame_id == main {
                    return;
                }
            }
        };
        match tokio::time::timeout(timeout, interrupts.guard(wait)).await {
            Ok(done) => done?,
            Err(_elapsed) => {
                return Err(BrowserFailure::Timeout {
                    what: "the page the action opened".to_owned(),
                    after: timeout,
                })
            }
        }
        let loaded = self.read_loaded(interrupts).await?;
        self.loaded = loaded.clone();
        Ok(Some(loaded))
    }

    /// Forgets load events seen so far, before an action that may navigate.
    pub fn forget_loads(&mut self) {
        drain(&mut self.started_loading);
        drain(&mut self.stopped_loading);
    }

    async fn read_loaded(&self, interrupts: &Interrupts) -> Result<Loaded, BrowserFailure> {
        #[derive(serde::Deserialize)]
        struct Answer {
            url: String,
            status: u16,
        }
        let answer: Answer = self
            .call("loaded", serde_json::json!({}), "read the page", interrupts)
            .await?;
        Ok(Loaded {
            status: answer.status,
            url: answer.url,
        })
    }

    /// The loader of the main frame's current document, from the lifecycle
    /// events seen (drained) so far.
    fn current_loader(&mut self) -> Option<String> {
        let mut loader = None;
        while let Some(Some(event)) = self.lifecycle.next().now_or_never() {
            if event.frame_id == self.main_frame {
                loader = Some(event.loader_id.inner().clone());
            }
        }
        loader
    }

    async fn lifecycle_event(&mut self, frame: &FrameId, loader: &str, name: &str) {
        while let Some(event) = self.lifecycle.next().await {
            if &event.frame_id == frame && event.loader_id.inner() == loader && event.name == name {
                return;
            }
        }
        // The page is gone; the next call says how.
    }

    async fn dom_content_loaded_after(&mut self, previous: Option<String>) {
        while let Some(event) = self.lifecycle.next().await {
            if event.frame_id == self.main_frame
                && event.name == "DOMContentLoaded"
                && Some(event.loader_id.inner()) != previous.as_ref()
            {
                return;
            }
        }
    }

    /// Runs one of the operations of `page.js` and reads its JSON answer.
    pub async fn call<T: DeserializeOwned>(
        &self,
        op: &str,
        args: serde_json::Value,
        action: &'static str,
        interrupts: &Interrupts,
    ) -> Result<T, BrowserFailure> {
        let script = format!("({PAGE_JS})({}, {args})", js_string(op));
        let value = self.evaluate_raw(&script, action, interrupts).await?;
        serde_json::from_value(value).map_err(|err| {
            tracing::debug!(op, error = %err, "unexpected answer from a page script");
            BrowserFailure::Protocol { action }
        })
    }

    /// Evaluates Accord's own script in the page: an exception is a
    /// protocol failure (the page broke our script), logged.
    pub async fn evaluate_raw(
        &self,
        script: &str,
        action: &'static str,
        interrupts: &Interrupts,
    ) -> Result<serde_json::Value, BrowserFailure> {
        match self.evaluate(script, action, interrupts).await? {
            Ok(value) => Ok(value),
            Err(exception) => {
                tracing::debug!(action, exception = %exception, "a page script threw");
                Err(BrowserFailure::Protocol { action })
            }
        }
    }

    /// Evaluates an expression in the page, awaiting a promise, and returns
    /// its JSON value or the text of the exception it threw.
    pub async fn evaluate(
        &self,
        expression: &str,
        action: &'static str,
        interrupts: &Interrupts,
    ) -> Result<Result<serde_json::Value, String>, BrowserFailure> {
        let mut params = EvaluateParams::new(expression);
        params.return_by_value = Some(true);
        params.await_promise = Some(true);
        let evaluated = interrupts
            .cdp(action, self.page.execute(params))
            .await?
            .result;
        if let Some(exception) = evaluated.exception_details {
            let text = exception
                .exception
                .and_then(|exception| exception.description)
                .unwrap_or(exception.text);
            return Ok(Err(text));
        }
        Ok(Ok(evaluated
            .result
            .value
            .unwrap_or(serde_json::Value::Null)))
    }

    /// Runs a protocol command on this page.
    pub async fn execute<C: Command>(
        &self,
        command: C,
        action: &'static str,
        interrupts: &Interrupts,
    ) -> Result<C::Response, BrowserFailure> {
        Ok(interrupts
            .cdp(action, self.page.execute(command))
            .await?
            .result)
    }
}

/// Drops the events a stream has buffered.
fn drain<T: chromiumoxide::cdp::IntoEventKind + Unpin>(stream: &mut EventStream<T>) {
    while let Some(Some(_)) = stream.next().now_or_never() {}
}

/// A JavaScript string literal (JSON's is one).
pub(super) fn js_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}
