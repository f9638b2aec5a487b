//! [`AccordClient`]: one method per route.

use std::time::Duration;

use accord_model::{
    ApiKey, ApiKeyList, ArtifactList, ArtifactName, AuditPage, ClaimRequest, ClaimResponse,
    CompleteRequest, CreatedApiKey, EscalateRequest, EventPage, FailRequest, HeartbeatRequest,
    HeartbeatResponse, ItemPage, ItemStateFilter, Job, JobBatch, JobId, JobPage, JobState,
    LeaseRef, MonitorId, MonitorPage, MonitorPatch, MonitorRun, MonitorView, NewApiKey, NewJob,
    NewJobBatch, NewMonitor, NewWorkflowRun, NewWorkspace, OpsStatus, QueueStatsView,
    ReleaseRequest, ReportResponse, RunDiff, RunPage, Series, Sha256Digest, SnapshotPage,
    StoredArtifact, WorkerId, WorkflowList, WorkflowRunView, WorkflowView, Workspace,
    WorkspaceList,
};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

use crate::ClientError;

/// A handle to one Accord server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccordClient {
    http: reqwest::Client,
    base: Url,
    /// `Bearer acc_…`, marked sensitive so it never shows in debug output.
    authorization: Option<reqwest::header::HeaderValue>,
}

/// A submitted job and whether this call created it (`false`: idempotent replay).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job: Job,
    pub created: bool,
}

/// An artifact to upload over the worker protocol.
#[derive(Debug, Clone)]
pub struct ArtifactUpload<'a> {
    pub worker_id: &'a WorkerId,
    pub lease: LeaseRef,
    pub name: &'a ArtifactName,
    /// A media type, e.g. `image/png`.
    pub content_type: &'a str,
    pub bytes: bytes::Bytes,
}

/// An artifact download under way: the answer's headers, and its body
/// read chunk by chunk (or whole) as it arrives.
#[derive(Debug)]
pub struct ArtifactDownload {
    /// 200 for the whole artifact, 206 for a range.
    pub status: u16,
    pub content_type: Option<String>,
    /// The artifact's SHA-256, from its `ETag`.
    pub sha256: Option<Sha256Digest>,
    /// `bytes a-b/size` for a range.
    pub content_range: Option<String>,
    pub content_length: Option<u64>,
    response: reqwest::Response,
}

impl ArtifactDownload {
    /// The next chunk of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, ClientError> {
        self.response.chunk().await.map_err(ClientError::transport)
    }

    /// The rest of the body, in memory.
    pub async fn bytes(self) -> Result<bytes::Bytes, ClientError> {
        self.response.bytes().await.map_err(ClientError::transport)
    }
}

/// An evidence manifest as stored: its bytes (canonical JSON) and the
/// SHA-256 the server holds for them.
#[derive(Debug, Clone)]
pub struct ManifestDownload {
    pub bytes: bytes::Bytes,
    pub sha256: Option<Sha256Digest>,
    pub attempt: Option<u32>,
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn etag_digest(response: &reqwest::Response) -> Option<Sha256Digest> {
    header(response, "etag")?.trim_matches('"').parse().ok()
}

/// Filters for [`AccordClient::list_jobs`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListJobs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl AccordClient {
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let mut base = Url::parse(base_url)
            .map_err(|err| ClientError::BaseUrl(format!("{base_url}: {err}")))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("accord-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            // The server closes a keep-alive connection that waits longer
            // than its header-read timeout (10 s by default) for the next
            // request; drop idle connections before that, so a request is
            // never sent on one the server is closing.
            .pool_idle_timeout(Duration::from_secs(4))
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(ClientError::transport)?;
        Ok(Self {
            http,
            base,
            authorization: None,
        })
    }

    /// Sends this API key (`acc_<id>_<secret>`) with every request.
    pub fn with_api_key(mut self, key: &str) -> Result<Self, ClientError> {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.trim()))
            .map_err(|_| {
            ClientError::BaseUrl("the API key contains invalid characters".to_owned())
        })?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .expect("routes are valid relative URLs");
        let request = self.http.request(method, url);
        match &self.authorization {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<(u16, T), ClientError> {
        let response = request.send().await.map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(ClientError::transport)?;
        if !(200..300).contains(&status) {
            return Err(ClientError::from_body(status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(|value| (status, value))
            .map_err(|err| ClientError::Decode {
                status,
                reason: err.to_string(),
            })
    }

    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let request = self.request(Method::POST, path).json(body).timeout(timeout);
        self.send(request).await.map(|(_, value)| value)
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let request = self
            .request(Method::GET, path)
            .timeout(Duration::from_secs(30));
        self.send(request).await.map(|(_, value)| value)
    }

    // --- REST API -----------------------------------------------------------

    pub async fn submit_job(
        &self,
        job: &NewJob,
        idempotency_key: Option<&str>,
    ) -> Result<Submitted, ClientError> {
        let mut request = self
            .request(Method::POST, "api/v1/jobs")
            .json(job)
            .timeout(Duration::from_secs(30));
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let (status, job) = self.send(request).await?;
        Ok(Submitted {
            job,
            created: status == 201,
        })
    }

    /// Submits many jobs at once, all or none.
    pub async fn submit_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>, ClientError> {
        let batch = NewJobBatch { jobs };
        let created: JobBatch = self
            .post("api/v1/jobs/batch", &batch, Duration::from_secs(60))
            .await?;
        Ok(created.jobs)
    }

    pub async fn get_job(&self, id: JobId) -> Result<Job, ClientError> {
        self.get(&format!("api/v1/jobs/{id}")).await
    }

    pub async fn list_jobs(&self, filter: &ListJobs) -> Result<JobPage, ClientError> {
        let request = self
            .request(Method::GET, "api/v1/jobs")
            .query(filter)
            .timeout(Duration::from_secs(30));
        self.send(request).await.map(|(_, page)| page)
    }

    pub async fn job_events(
        &self,
        id: JobId,
        after: Option<i64>,
    ) -> Result<EventPage, ClientError> {
        let mut request = self.request(Method::GET, &format!("api/v1/jobs/{id}/events"));
        if let Some(after) = after {
            request = request.query(&[("after", after)]);
        }
        self.send(request.timeout(Duration::from_secs(30)))
            .await
            .map(|(_, page)| page)
    }

    pub async fn cancel_job(&self, id: JobId) -> Result<Job, ClientError> {
        self.post(
            &format!("api/v1/jobs/{id}/cancel"),
            &serde_json::json!({}),
            Duration::from_secs(30),
        )
        .await
    }

    pub async fn retry_job(&self, id: JobId) -> Result<Job, ClientError> {
        self.post(
            &format!("api/v1/jobs/{id}/retry"),
            &serde_json::json!({}),
            Duration::from_secs(30),
        )
        .await
    }

    // --- Workflows and monitors --------------------------------------------

    pub async fn list_workflows(&self) -> Result<WorkflowList, ClientError> {
        self.get("api/v1/workflows").await
    }

    /// One workflow with its input's JSON Schema (`page_change`, ...).
    pub async fn get_workflow(&self, name: &str) -> Result<WorkflowView, ClientError> {
        self.get(&format!("api/v1/workflows/{name}")).await
    }

    /// Runs a workflow once on a page; the run is read back with
    /// [`Self::workflow_run`] once its job finished.
    pub async fn run_workflow(
        &self,
        name: &str,
        run: &NewWorkflowRun,
    ) -> Result<WorkflowRunView, ClientError> {
        self.post(
            &format!("api/v1/workflows/{name}/run"),
            run,
            Duration::from_secs(30),
        )
        .await
    }

    /// A workflow run with its outcome once its job finished.
    pub async fn workflow_run(&self, id: JobId) -> Result<WorkflowRunView, ClientError> {
        self.get(&format!("api/v1/workflow-runs/{id}")).await
    }

    pub async fn create_monitor(&self, monitor: &NewMonitor) -> Result<MonitorView, ClientError> {
        self.post("api/v1/monitors", monitor, Duration::from_secs(30))
            .await
    }

    /// Monitors, newest first, optionally with a tag; `cursor` is the
    /// previous page's `next_cursor`.
    pub async fn list_monitors(
        &self,
        tag: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<MonitorPage, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(tag) = tag {
            query.push(("tag", tag.to_owned()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let request = self
            .request(Method::GET, "api/v1/monitors")
            .query(&query)
            .timeout(Duration::from_secs(30));
        self.send(request).await.map(|(_, page)| page)
    }

    pub async fn get_monitor(&self, id: MonitorId) -> Result<MonitorView, ClientError> {
        self.get(&format!("api/v1/monitors/{id}")).await
    }

    pub async fn update_monitor(
        &self,
        id: MonitorId,
        patch: &MonitorPatch,
    ) -> Result<MonitorView, ClientError> {
        let request = self
            .request(Method::PATCH, &format!("api/v1/monitors/{id}"))
            .json(patch)
            .timeout(Duration::from_secs(30));
        self.send(request).await.map(|(_, monitor)| monitor)
    }

    pub async fn delete_monitor(&self, id: MonitorId) -> Result<(), ClientError> {
        let response = self
            .request(Method::DELETE, &format!("api/v1/monitors/{id}"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let bytes = response.bytes().await.map_err(ClientError::transport)?;
        Err(ClientError::from_body(status, &bytes))
    }

    pub async fn pause_monitor(&self, id: MonitorId) -> Result<MonitorView, ClientError> {
        self.post(
            &format!("api/v1/monitors/{id}/pause"),
            &serde_json::json!({}),
            Duration::from_secs(30),
        )
        .await
    }

    pub async fn resume_monitor(&self, id: MonitorId) -> Result<MonitorView, ClientError> {
        self.post(
            &format!("api/v1/monitors/{id}/resume"),
            &serde_json::json!({}),
            Duration::from_secs(30),
        )
        .await
    }

    /// Starts a run now; refused (409) while one is in progress.
    pub async fn run_monitor(&self, id: MonitorId) -> Result<MonitorRun, ClientError> {
        self.post(
            &format!("api/v1/monitors/{id}/run"),
            &serde_json::json!({}),
            Duration::from_secs(30),
        )
        .await
    }

    /// A monitor's runs, newest first, each with its outcome.
    pub async fn monitor_runs(
        &self,
        id: MonitorId,
        cursor: Option<i64>,
        limit: Option<u32>,
    ) -> Result<RunPage, ClientError> {
        let request = with_page(
            self.request(Method::GET, &format!("api/v1/monitors/{id}/runs")),
            cursor,
            limit,
        );
        self.send(request.timeout(Duration::from_secs(30)))
            .await
            .map(|(_, page)| page)
    }

    /// The numbers a monitor tracked, optionally of one name.
    pub async fn monitor_series(
        &self,
        id: MonitorId,
        name: Option<&str>,
    ) -> Result<Series, ClientError> {
        let mut request = self.request(Method::GET, &format!("api/v1/monitors/{id}/series"));
        if let Some(name) = name {
            request = request.query(&[("name", name)]);
        }
        self.send(request.timeout(Duration::from_secs(30)))
            .await
            .map(|(_, series)| series)
    }

    /// A page of the snapshots a monitor's runs kept, newest first.
    pub async fn monitor_snapshots(
        &self,
        id: MonitorId,
        cursor: Option<i64>,
        limit: Option<u32>,
    ) -> Result<SnapshotPage, ClientError> {
        let request = with_page(
            self.request(Method::GET, &format!("api/v1/monitors/{id}/snapshots")),
            cursor,
            limit,
        );
        self.send(request.timeout(Duration::from_secs(30)))
            .await
            .map(|(_, page)| page)
    }

    /// What changed between the snapshots of runs `from` and `to` of a
    /// monitor.
    pub async fn monitor_diff(
        &self,
        id: MonitorId,
        from: i64,
        to: i64,
    ) -> Result<RunDiff, ClientError> {
        let request = self
            .request(Method::GET, &format!("api/v1/monitors/{id}/diff"))
            .query(&[("from", from), ("to", to)])
            .timeout(Duration::from_secs(60));
        self.send(request).await.map(|(_, diff)| diff)
    }

    /// A page of an `extract_items` monitor's item history.
    pub async fn monitor_items(
        &self,
        id: MonitorId,
        filter: &ItemFilter,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ItemPage, ClientError> {
        let request = self.items_request(id, "json", filter, cursor, limit);
        self.send(request).await.map(|(_, page)| page)
    }

    /// A page of an item history as CSV, with the next page's cursor.
    pub async fn monitor_items_csv(
        &self,
        id: MonitorId,
        filter: &ItemFilter,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<(String, Option<String>), ClientError> {
        let request = self.items_request(id, "csv", filter, cursor, limit);
        let response = request.send().await.map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        let next = response
            .headers()
            .get("accord-next-cursor")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await.map_err(ClientError::transport)?;
        if !(200..300).contains(&status) {
            return Err(ClientError::from_body(status, &bytes));
        }
        Ok((String::from_utf8_lossy(&bytes).into_owned(), next))
    }

    fn items_request(
        &self,
        id: MonitorId,
        format: &str,
        filter: &ItemFilter,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> RequestBuilder {
        let mut request = self
            .request(Method::GET, &format!("api/v1/monitors/{id}/items"))
            .query(&[("format", format)]);
        if let Some(state) = filter.state {
            let state = match state {
                ItemStateFilter::Current => "current",
                ItemStateFilter::Removed => "removed",
                ItemStateFilter::All => "all",
            };
            request = request.query(&[("state", state)]);
        }
        if let Some(q) = &filter.q {
            request = request.query(&[("q", q)]);
        }
        with_page(request, cursor, limit).timeout(Duration::from_secs(120))
    }

    /// Every artifact of a job (manifests included), by name.
    pub async fn list_artifacts(&self, id: JobId) -> Result<ArtifactList, ClientError> {
        self.get(&format!("api/v1/jobs/{id}/artifacts")).await
    }

    /// Opens an artifact, or `range` (`start..end`) of it.
    pub async fn artifact(
        &self,
        id: JobId,
        name: &ArtifactName,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ArtifactDownload, ClientError> {
        let mut request = self.request(Method::GET, &format!("api/v1/jobs/{id}/artifacts/{name}"));
        if let Some(range) = range {
            request = request.header(
                "range",
                format!("bytes={}-{}", range.start, range.end.saturating_sub(1)),
            );
        }
        let response = request.send().await.map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes = response.bytes().await.map_err(ClientError::transport)?;
            return Err(ClientError::from_body(status, &bytes));
        }
        Ok(ArtifactDownload {
            status,
            content_type: header(&response, "content-type"),
            sha256: etag_digest(&response),
            content_range: header(&response, "content-range"),
            content_length: response.content_length(),
            response,
        })
    }

    /// The evidence manifest of `attempt`, or of the latest attempt with one.
    pub async fn manifest(
        &self,
        id: JobId,
        attempt: Option<u32>,
    ) -> Result<ManifestDownload, ClientError> {
        let mut request = self
            .request(Method::GET, &format!("api/v1/jobs/{id}/manifest"))
            .timeout(Duration::from_secs(30));
        if let Some(attempt) = attempt {
            request = request.query(&[("attempt", attempt)]);
        }
        let response = request.send().await.map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        let sha256 = etag_digest(&response);
        let attempt = header(&response, "x-accord-manifest-attempt").and_then(|a| a.parse().ok());
        let bytes = response.bytes().await.map_err(ClientError::transport)?;
        if !(200..300).contains(&status) {
            return Err(ClientError::from_body(status, &bytes));
        }
        Ok(ManifestDownload {
            bytes,
            sha256,
            attempt,
        })
    }

    pub async fn queue_stats(&self) -> Result<QueueStatsView, ClientError> {
        self.get("api/v1/queue/stats").await
    }

    pub async fn create_key(&self, key: &NewApiKey) -> Result<CreatedApiKey, ClientError> {
        self.post("api/v1/keys", key, Duration::from_secs(30)).await
    }

    /// Keys of the caller's workspace, or of the named one (admins of the default workspace).
    pub async fn list_keys(&self, workspace: Option<&str>) -> Result<ApiKeyList, ClientError> {
        let mut request = self
            .request(Method::GET, "api/v1/keys")
            .timeout(Duration::from_secs(30));
        if let Some(workspace) = workspace {
            request = request.query(&[("workspace", workspace)]);
        }
        self.send(request).await.map(|(_, value)| value)
    }

    pub async fn revoke_key(
        &self,
        id: &str,
        workspace: Option<&str>,
    ) -> Result<ApiKey, ClientError> {
        let mut request = self
            .request(Method::POST, &format!("api/v1/keys/{id}/revoke"))
            .timeout(Duration::from_secs(30));
        if let Some(workspace) = workspace {
            request = request.query(&[("workspace", workspace)]);
        }
        self.send(request).await.map(|(_, value)| value)
    }

    pub async fn create_workspace(&self, name: &str) -> Result<Workspace, ClientError> {
        let body = NewWorkspace {
            name: name.to_owned(),
        };
        self.post("api/v1/workspaces", &body, Duration::from_secs(30))
            .await
    }

    pub async fn list_workspaces(&self) -> Result<WorkspaceList, ClientError> {
        self.get("api/v1/workspaces").await
    }

    pub async fn audit(&self, query: &[(&str, String)]) -> Result<AuditPage, ClientError> {
        let request = self
            .request(Method::GET, "api/v1/audit")
            .query(query)
            .timeout(Duration::from_secs(30));
        self.send(request).await.map(|(_, value)| value)
    }

    pub async fn ops_status(&self) -> Result<OpsStatus, ClientError> {
        self.get("api/v1/ops/status").await
    }

    // --- Worker protocol ----------------------------------------------------

    /// Long-polls for jobs; the HTTP timeout allows for the server's wait.
    pub async fn claim(&self, request: &ClaimRequest) -> Result<ClaimResponse, ClientError> {
        let timeout = Duration::from_millis(request.wait_ms) + Duration::from_secs(15);
        self.post("internal/v1/worker/claim", request, timeout)
            .await
    }

    pub async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.post(
            "internal/v1/worker/heartbeat",
            request,
            Duration::from_secs(15),
        )
        .await
    }

    pub async fn complete(&self, request: &CompleteRequest) -> Result<ReportResponse, ClientError> {
        self.post(
            "internal/v1/worker/complete",
            request,
            Duration::from_secs(15),
        )
        .await
    }

    pub async fn fail(&self, request: &FailRequest) -> Result<ReportResponse, ClientError> {
        self.post("internal/v1/worker/fail", request, Duration::from_secs(15))
            .await
    }

    /// Streams an artifact of a leased job to the control plane, declaring
    /// its SHA-256 and size; the server keeps it only if the bytes match.
    pub async fn upload_artifact(
        &self,
        upload: ArtifactUpload<'_>,
    ) -> Result<StoredArtifact, ClientError> {
        let LeaseRef { job_id, attempt } = upload.lease;
        let sha256 = Sha256Digest::of(&upload.bytes);
        // A generous allowance for big files on slow links; the server ends
        // a stalled upload on its own.
        let timeout = Duration::from_secs(60 + upload.bytes.len() as u64 / (256 * 1024));
        let request = self
            .request(
                Method::PUT,
                &format!(
                    "internal/v1/worker/jobs/{job_id}/attempts/{attempt}/artifacts/{}",
                    upload.name
                ),
            )
            .query(&[("worker_id", upload.worker_id.as_str())])
            .header("content-type", upload.content_type)
            .header("x-accord-sha256", sha256.to_hex())
            .header("content-length", upload.bytes.len())
            .body(upload.bytes)
            .timeout(timeout);
        self.send(request).await.map(|(_, stored)| stored)
    }

    pub async fn release(&self, request: &ReleaseRequest) -> Result<ReportResponse, ClientError> {
        self.post(
            "internal/v1/worker/release",
            request,
            Duration::from_secs(15),
        )
        .await
    }

    pub async fn escalate(&self, request: &EscalateRequest) -> Result<ReportResponse, ClientError> {
        self.post(
            "internal/v1/worker/escalate",
            request,
            Duration::from_secs(15),
        )
        .await
    }

    /// Asks for a permit to send a job's requests to its hosts.
    pub async fn egress_acquire(
        &self,
        request: &accord_model::EgressAcquireRequest,
    ) -> Result<accord_model::EgressAcquireResponse, ClientError> {
        self.post(
            "internal/v1/worker/egress/acquire",
            request,
            Duration::from_secs(15),
        )
        .await
    }

    /// Ends permits, with how their requests went.
    pub async fn egress_finish(
        &self,
        request: &accord_model::EgressFinishRequest,
    ) -> Result<(), ClientError> {
        let response = self
            .request(Method::POST, "internal/v1/worker/egress/finish")
            .json(request)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let bytes = response.bytes().await.map_err(ClientError::transport)?;
        Err(ClientError::from_body(status, &bytes))
    }

    /// What is known about an origin's robots.txt: a fresh answer, the
    /// claim to fetch it, or how long to wait for the worker fetching it.
    pub async fn robots_lookup(
        &self,
        request: &accord_model::RobotsLookupRequest,
    ) -> Result<accord_model::RobotsLookupResponse, ClientError> {
        self.post(
            "internal/v1/worker/robots/lookup",
            request,
            Duration::from_secs(15),
        )
        .await
    }

    /// Shares what fetching an origin's robots.txt gave.
    pub async fn robots_publish(
        &self,
        request: &accord_model::RobotsPublishRequest,
    ) -> Result<(), ClientError> {
        let response = self
            .request(Method::POST, "internal/v1/worker/robots/publish")
            .json(request)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let bytes = response.bytes().await.map_err(ClientError::transport)?;
        Err(ClientError::from_body(status, &bytes))
    }

    /// Puts leased jobs back until their domain may be visited again.
    pub async fn defer(
        &self,
        request: &accord_model::DeferRequest,
    ) -> Result<ReportResponse, ClientError> {
        self.post("internal/v1/worker/defer", request, Duration::from_secs(15))
            .await
    }
}

/// `request` with a paged route's `cursor` and `limit`, where given.
/// Which items of a history to list (`state`, `q`); the default lists
/// them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFilter {
    pub state: Option<ItemStateFilter>,
    /// Only items whose key or a field value contains this text, ignoring case.
    pub q: Option<String>,
}

fn with_page(
    mut request: RequestBuilder,
    cursor: Option<impl serde::Serialize>,
    limit: Option<u32>,
) -> RequestBuilder {
    if let Some(cursor) = cursor {
        request = request.query(&[("cursor", cursor)]);
    }
    if let Some(limit) = limit {
        request = request.query(&[("limit", limit)]);
    }
    request
}
