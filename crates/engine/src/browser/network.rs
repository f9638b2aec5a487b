//! `capture_network` in the browser: every request the page makes whose
//! URL matches a capture's pattern, in the format every engine writes
//! ([`ActiveCapture`]): method, URL, status, headers without credentials,
//! and the body up to the capture's cap.
//!
//! A task per page reads the Network events as they come and fetches the
//! bodies of matching responses once they have finished loading; the job
//! starts captures with a message and collects them at its end (success or
//! failure). Requests still loading then are kept without a body.

use std::collections::HashMap;

use base64::Engine as _;
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived,
    GetResponseBodyParams, Headers, RequestId,
};
use chromiumoxide::cdp::browser_protocol::page::GetFrameTreeParams;
use chromiumoxide::listeners::EventStream;
use chromiumoxide::Page;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use accord_model::MAX_CAPTURE_BODY_BYTES;

use crate::{ActiveCapture, Exchange, Header};

/// The most of a body kept for any capture (the largest cap a step may ask).
const MAX_CAPTURE_BODY_FETCH: usize = MAX_CAPTURE_BODY_BYTES as usize;

/// Longest wait, at the end of a job, for the browser to answer the round
/// trip that flushes its events.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A request seen, waiting for its response and body.
#[derive(Debug)]
struct Pending {
    method: String,
    url: String,
    request_headers: Vec<Header>,
    response: Option<(u16, String, Vec<Header>)>,
}

#[derive(Debug)]
enum Command {
    Start(ActiveCapture),
    /// Record everything the page has done so far, then answer.
    Sync(oneshot::Sender<()>),
    Finish(oneshot::Sender<Vec<ActiveCapture>>),
}

/// The job's handle on its page's recorder.
#[derive(Debug)]
pub(super) struct Recorder {
    commands: mpsc::UnboundedSender<Command>,
}

/// The Network events a recorder reads.
#[derive(Debug)]
pub(super) struct NetworkEvents {
    pub requests: EventStream<EventRequestWillBeSent>,
    pub responses: EventStream<EventResponseReceived>,
    pub finished: EventStream<EventLoadingFinished>,
    pub failed: EventStream<EventLoadingFailed>,
}

impl NetworkEvents {
    pub async fn listen(page: &Page) -> Result<Self, chromiumoxide::error::CdpError> {
        Ok(Self {
            requests: page.event_listener().await?,
            responses: page.event_listener().await?,
            finished: page.event_listener().await?,
            failed: page.event_listener().await?,
        })
    }
}

impl Recorder {
    /// Starts recording with the captures started so far (those before the
    /// first page load).
    pub fn start(page: Page, events: NetworkEvents, captures: Vec<ActiveCapture>) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(record(page, events, captures, receiver));
        Self { commands }
    }

    pub fn add(&self, capture: ActiveCapture) {
        // A recorder whose page is gone records nothing more.
        let _ = self.commands.send(Command::Start(capture));
    }

    /// Returns once every request the page made so far is recorded, with
    /// its body if it finished loading (bounded by [`FLUSH_TIMEOUT`] and
    /// the bodies' fetches).
    pub async fn sync(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Sync(reply)).is_ok() {
            let _ = done.await;
        }
    }

    /// Every capture with what it recorded.
    pub async fn finish(&self) -> Vec<ActiveCapture> {
        let (reply, captures) = oneshot::channel();
        if self.commands.send(Command::Finish(reply)).is_err() {
            return Vec::new();
        }
        captures.await.unwrap_or_default()
    }
}

async fn record(
    page: Page,
    events: NetworkEvents,
    mut captures: Vec<ActiveCapture>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut state = State {
        page,
        pending: HashMap::new(),
    };
    let NetworkEvents {
        requests,
        responses,
        finished,
        failed,
    } = events;
    let mut streams = Streams {
        requests: requests.fuse(),
        responses: responses.fuse(),
        finished: finished.fuse(),
        failed: failed.fuse(),
    };
    loop {
        tokio::select! {
            // In the order the browser sends them: a response is only ever
            // read after its request, and its end after its response.
            biased;
            Some(event) = streams.requests.next() => state.on_request(&event, &captures),
            Some(event) = streams.responses.next() => state.on_response(&event, &captures),
            Some(event) = streams.finished.next() => state.on_finished(&event.request_id, &mut captures).await,
            Some(event) = streams.failed.next() => { state.pending.remove(&event.request_id); }
            command = commands.recv() => match command {
                Some(Command::Start(capture)) => captures.push(capture),
                Some(Command::Sync(reply)) => {
                    state.flush(&mut streams, &mut captures).await;
                    let _ = reply.send(());
                }
                Some(Command::Finish(reply)) => {
                    state.flush(&mut streams, &mut captures).await;
                    // Responses still loading are kept without their body.
                    for pending in std::mem::take(&mut state.pending).into_values() {
                        record_exchange(&mut captures, pending, None);
                    }
                    let _ = reply.send(std::mem::take(&mut captures));
                    return;
                }
                None => return,
            },
            else => {
                // The page is gone; wait for the job to collect.
                while let Some(command) = commands.recv().await {
                    match command {
                        Command::Start(capture) => captures.push(capture),
                        Command::Sync(reply) => {
                            let _ = reply.send(());
                        }
                        Command::Finish(reply) => {
                            let _ = reply.send(std::mem::take(&mut captures));
                            return;
                        }
                    }
                }
                return;
            }
        }
    }
}

struct Streams {
    requests: futures::stream::Fuse<EventStream<EventRequestWillBeSent>>,
    responses: futures::stream::Fuse<EventStream<EventResponseReceived>>,
    finished: futures::stream::Fuse<EventStream<EventLoadingFinished>>,
    failed: futures::stream::Fuse<EventStream<EventLoadingFailed>>,
}

struct State {
    page: Page,
    pending: HashMap<RequestId, Pending>,
}

impl State {
    fn on_request(&mut self, event: &EventRequestWillBeSent, captures: &[ActiveCapture]) {
        if captures.is_empty() {
            return;
        }
        // A redirect reuses the request's id: the exchange keeps the URL
        // first asked for, and its response is the last one.
        self.pending
            .entry(event.request_id.clone())
            .or_insert_with(|| Pending {
                method: event.request.method.clone(),
                url: event.request.url.clone(),
                request_headers: headers(&event.request.headers),
                response: None,
            });
    }

    fn on_response(&mut self, event: &EventResponseReceived, captures: &[ActiveCapture]) {
        let Some(pending) = self.pending.get_mut(&event.request_id) else {
            return;
        };
        let response_url = &event.response.url;
        if !captures
            .iter()
            .any(|capture| capture.wants(&pending.url, Some(response_url)))
        {
            self.pending.remove(&event.request_id);
            return;
        }
        pending.response = Some((
            u16::try_from(event.response.status).unwrap_or(0),
            response_url.clone(),
            headers(&event.response.headers),
        ));
    }

    async fn on_finished(&mut self, request: &RequestId, captures: &mut [ActiveCapture]) {
        let Some(pending) = self.pending.remove(request) else {
            return;
        };
        if pending.response.is_none() {
            return;
        }
        let body = self.body(request).await;
        record_exchange(captures, pending, body);
    }

    /// The body as Chromium kept it, or `None` when it has none for us
    /// (a redirect, a body evicted from its buffer).
    async fn body(&self, request: &RequestId) -> Option<(Vec<u8>, bool)> {
        let answer = self
            .page
            .execute(GetResponseBodyParams::new(request.clone()))
            .await
            .ok()?
            .result;
        let mut bytes = if answer.base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(answer.body.as_bytes())
                .ok()?
        } else {
            answer.body.into_bytes()
        };
        // Chromium hands over whole bodies; no capture keeps more than this.
        let more = bytes.len() > MAX_CAPTURE_BODY_FETCH;
        bytes.truncate(MAX_CAPTURE_BODY_FETCH);
        Some((bytes, more))
    }

    /// Handles every event of what the page did so far. The browser sends
    /// its events in order on the one connection: once it answers a
    /// command, the events of every request made before have arrived.
    async fn flush(&mut self, streams: &mut Streams, captures: &mut [ActiveCapture]) {
        let round_trip = self.page.execute(GetFrameTreeParams::default());
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, round_trip).await;
        self.drain(streams, captures).await;
    }

    /// Handles what the connection has delivered so far.
    async fn drain(&mut self, streams: &mut Streams, captures: &mut [ActiveCapture]) {
        while let Some(Some(event)) = streams.requests.next().now_or_never() {
            self.on_request(&event, captures);
        }
        while let Some(Some(event)) = streams.responses.next().now_or_never() {
            self.on_response(&event, captures);
        }
        while let Some(Some(event)) = streams.failed.next().now_or_never() {
            self.pending.remove(&event.request_id);
        }
        while let Some(Some(event)) = streams.finished.next().now_or_never() {
            self.on_finished(&event.request_id, captures).await;
        }
    }
}

fn record_exchange(
    captures: &mut [ActiveCapture],
    pending: Pending,
    body: Option<(Vec<u8>, bool)>,
) {
    let Some((status, response_url, response_headers)) = pending.response else {
        return;
    };
    let redirected = response_url != pending.url;
    let exchange = Exchange {
        method: pending.method,
        url: pending.url,
        request_headers: pending.request_headers,
        status,
        response_url: redirected.then_some(response_url),
        response_headers,
        body: None,
    };
    let response_url = exchange.response_url.clone();
    for capture in captures.iter_mut() {
        if capture.wants(&exchange.url, response_url.as_deref()) {
            capture.record(
                &exchange,
                body.as_ref().map(|(bytes, more)| (bytes.as_slice(), *more)),
            );
        }
    }
}

/// Protocol headers (a JSON object of strings), credentials left out.
fn headers(headers: &Headers) -> Vec<Header> {
    let Some(object) = headers.inner().as_object() else {
        return Vec::new();
    };
    Header::filter(
        object
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?.as_bytes()))),
    )
}
