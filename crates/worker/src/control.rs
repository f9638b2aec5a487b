//! [`ControlPlane`]: the worker's one boundary, the calls of the worker
//! protocol (claim, heartbeat, complete, fail, release, and the artifact
//! upload, politeness permits, shared robots.txt answers). [`AccordClient`] implements it over HTTP; the worker's own
//! tests implement it with an in-memory double. Owns no retry: the loop and
//! the reporter decide what to do with an error.

use accord_client::{AccordClient, ArtifactUpload, ClientError};
use accord_model::{
    ClaimRequest, ClaimResponse, CompleteRequest, DeferRequest, EgressAcquireRequest,
    EgressAcquireResponse, EgressFinishRequest, EscalateRequest, FailRequest, HeartbeatRequest,
    HeartbeatResponse, ReleaseRequest, ReportResponse, RobotsLookupRequest, RobotsLookupResponse,
    RobotsPublishRequest, StoredArtifact,
};

/// What a worker asks of the control plane.
#[async_trait::async_trait]
pub trait ControlPlane: Send + Sync + std::fmt::Debug {
    /// Where the control plane is, for logs.
    fn describe(&self) -> String;

    /// Leases due jobs, waiting up to `request.wait_ms` for one.
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimResponse, ClientError>;

    /// Renews leases; the answer names jobs to stop.
    async fn heartbeat(&self, request: &HeartbeatRequest)
        -> Result<HeartbeatResponse, ClientError>;

    async fn complete(&self, request: &CompleteRequest) -> Result<ReportResponse, ClientError>;

    async fn fail(&self, request: &FailRequest) -> Result<ReportResponse, ClientError>;

    async fn release(&self, request: &ReleaseRequest) -> Result<ReportResponse, ClientError>;

    /// Moves `auto` jobs to the browser.
    async fn escalate(&self, request: &EscalateRequest) -> Result<ReportResponse, ClientError>;

    /// Asks for a permit to send a job's requests to its hosts.
    async fn egress_acquire(
        &self,
        request: &EgressAcquireRequest,
    ) -> Result<EgressAcquireResponse, ClientError>;

    /// Ends permits, with how their requests went.
    async fn egress_finish(&self, request: &EgressFinishRequest) -> Result<(), ClientError>;

    /// Puts leased jobs back unrun until their domain may be visited again.
    async fn defer(&self, request: &DeferRequest) -> Result<ReportResponse, ClientError>;

    /// What is known about an origin's robots.txt (shared by every worker).
    async fn robots_lookup(
        &self,
        request: &RobotsLookupRequest,
    ) -> Result<RobotsLookupResponse, ClientError>;

    /// Shares what fetching an origin's robots.txt gave.
    async fn robots_publish(&self, request: &RobotsPublishRequest) -> Result<(), ClientError>;

    /// Streams one artifact of a leased job; refused (`stale_lease`) once
    /// the lease is no longer this worker's.
    async fn upload_artifact(
        &self,
        upload: ArtifactUpload<'_>,
    ) -> Result<StoredArtifact, ClientError>;
}

#[async_trait::async_trait]
impl ControlPlane for AccordClient {
    fn describe(&self) -> String {
        self.base_url().to_string()
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimResponse, ClientError> {
        AccordClient::claim(self, request).await
    }

    async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        AccordClient::heartbeat(self, request).await
    }

    async fn complete(&self, request: &CompleteRequest) -> Result<ReportResponse, ClientError> {
        AccordClient::complete(self, request).await
    }

    async fn fail(&self, request: &FailRequest) -> Result<ReportResponse, ClientError> {
        AccordClient::fail(self, request).await
    }

    async fn release(&self, request: &ReleaseRequest) -> Result<ReportResponse, ClientError> {
        AccordClient::release(self, request).await
    }

    async fn escalate(&self, request: &EscalateRequest) -> Result<ReportResponse, ClientError> {
        AccordClient::escalate(self, request).await
    }

    async fn egress_acquire(
        &self,
        request: &EgressAcquireRequest,
    ) -> Result<EgressAcquireResponse, ClientError> {
        AccordClient::egress_acquire(self, request).await
    }

    async fn egress_finish(&self, request: &EgressFinishRequest) -> Result<(), ClientError> {
        AccordClient::egress_finish(self, request).await
    }

    async fn defer(&self, request: &DeferRequest) -> Result<ReportResponse, ClientError> {
        AccordClient::defer(self, request).await
    }

    async fn robots_lookup(
        &self,
        request: &RobotsLookupRequest,
    ) -> Result<RobotsLookupResponse, ClientError> {
        AccordClient::robots_lookup(self, request).await
    }

    async fn robots_publish(&self, request: &RobotsPublishRequest) -> Result<(), ClientError> {
        AccordClient::robots_publish(self, request).await
    }

    async fn upload_artifact(
        &self,
        upload: ArtifactUpload<'_>,
    ) -> Result<StoredArtifact, ClientError> {
        AccordClient::upload_artifact(self, upload).await
    }
}
