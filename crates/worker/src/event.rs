//! [`Event`]: the closed set of messages the run loop reacts to. Claims,
//! heartbeats, job tasks and the reporter run as tasks of their own and send
//! these back; the loop alone changes its state.

use accord_client::ClientError;
use accord_model::{ClaimedJob, HeartbeatResponse, JobId, RunEngine};

/// What the loop reacts to.
#[derive(Debug)]
pub(crate) enum Event {
    /// A claim for the slots of one engine came back.
    Claimed(RunEngine, Result<Vec<ClaimedJob>, ClientError>),
    Heartbeat(Result<HeartbeatResponse, ClientError>),
    /// The reporter is done with these jobs' outcomes (delivered, refused or
    /// given up on): their slots are free.
    Reported(Vec<JobId>),
    /// A job stopped before it finished, so nothing will be reported.
    Stopped(JobId),
}
