//! `GET /api/v1/jobs/{id}/events/stream`: a job's events as Server-Sent
//! Events, live.
//!
//! The event log in the store is the record: the stream reads it, resuming
//! after `Last-Event-ID` (or `after`), and sends what is new. Between reads
//! it waits for a notice that the job changed, from this replica or, through
//! Redis, from any other, with a periodic read as the backstop, so a lost
//! notice (Redis restarting, a lagging subscriber) only delays an event.
//! The stream ends once the job has reached a final state and every event
//! up to it was sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use accord_model::{ErrorBody, JobEvent, JobId, WorkspaceId};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;
use utoipa::IntoParams;

use crate::auth::Workspace;
use crate::extract::{JobIdPath, QueryParams};
use crate::{ApiError, ApiState};

const PAGE: u32 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Start after this event id (the `Last-Event-ID` header wins when both are sent).
    pub after: Option<i64>,
}

/// One message of the stream. OpenAPI 3.1 has the schema of an event
/// stream describe each of its messages, by their SSE fields.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "documents the wire format; the stream writes it with axum's `Event`"
)]
struct JobEventMessage {
    /// Always `job_event`.
    event: String,
    /// The event's id: send it as `Last-Event-ID` to resume after it.
    id: String,
    /// The event (a `JobEvent`) as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// Follow a job's events live (Server-Sent Events). Each event's `id` is the
/// event id, its `data` the event as JSON; reconnecting with
/// `Last-Event-ID` resumes without gaps or repeats. The stream ends after
/// the job's final state.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/events/stream", tag = "jobs",
    params(
        ("id" = String, Path, format = Uuid, description = "Job id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id"),
        StreamParams,
    ),
    responses(
        (status = 200, description = "A stream of `job_event` events", content_type = "text/event-stream", body = JobEventMessage),
        (status = 400, description = "Not a job id, or a bad cursor", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn stream_job_events(
    State(state): State<ApiState>,
    Workspace(workspace): Workspace,
    JobIdPath(id): JobIdPath,
    headers: HeaderMap,
    QueryParams(params): QueryParams<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::InvalidQuery("Last-Event-ID must be an event id".to_owned())
                })?,
        ),
        None => params.after,
    };
    // Subscribe before the first read, so a change in between is not missed.
    let notices = state.queue.event_bus().subscribe();
    let first = state.queue.events(workspace, id, after, PAGE).await?;
    // Resumed after the last event of a finished job: nothing more will come.
    let finished = first.is_empty() && state.queue.get(workspace, id).await?.state.is_terminal();
    let follower = Follower {
        state,
        workspace,
        id,
        after,
        notices,
        pending: first.into(),
        finished,
    };
    let stream = futures::stream::unfold(follower, |mut follower| async move {
        follower.next().await.map(|event| (Ok(event), follower))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The state of one stream, owned by it.
struct Follower {
    state: ApiState,
    workspace: WorkspaceId,
    id: JobId,
    after: Option<i64>,
    notices: broadcast::Receiver<accord_cluster::JobNotice>,
    pending: VecDeque<JobEvent>,
    finished: bool,
}

impl Follower {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.after = Some(event.id);
                if event.to_state.is_terminal() && self.pending.is_empty() {
                    self.finished = true;
                }
                let data = serde_json::to_string(&event).expect("events serialize");
                return Some(
                    Event::default()
                        .id(event.id.to_string())
                        .event("job_event")
                        .data(data),
                );
            }
            if self.finished || self.state.shutdown.is_cancelled() {
                return None;
            }
            self.wait_for_change().await;
            match self
                .state
                .queue
                .events(self.workspace, self.id, self.after, PAGE)
                .await
            {
                Ok(events) => self.pending.extend(events),
                // The job was pruned, or the database is away: end the
                // stream; the client reconnects with Last-Event-ID.
                Err(err) => {
                    tracing::debug!(job_id = %self.id, error = %err, "event stream ends");
                    return None;
                }
            }
        }
    }

    /// Returns when this job may have changed: a notice about it, the
    /// backstop interval, or shutdown.
    async fn wait_for_change(&mut self) {
        let backstop = tokio::time::sleep(self.state.config.event_poll_interval);
        tokio::pin!(backstop);
        loop {
            tokio::select! {
                notice = self.notices.recv() => match notice {
                    Ok(notice) if notice.job_id == self.id => return,
                    Ok(_) => {}
                    // Missed some: this job's may be among them.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        (&mut backstop).await;
                        return;
                    }
                },
                () = &mut backstop => return,
                () = self.state.shutdown.cancelled() => return,
            }
        }
    }
}

/// How often a stream re-reads the log when no notice arrives.
pub(crate) const DEFAULT_EVENT_POLL: Duration = Duration::from_secs(1);
