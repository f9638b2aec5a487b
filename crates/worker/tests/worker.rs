//! The worker on its own: claims, heartbeats, reports and shutdown, against
//! an in-memory control plane (the double at the worker's one boundary,
//! [`ControlPlane`]) and a test engine, on tokio's paused clock. Nothing
//! here sleeps on the wall clock: time only moves when every task waits.
//!
//! The real protocol, over HTTP against a real control plane, is covered
//! end to end by `crates/accord/tests`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_client::{ArtifactUpload, ClientError};
use accord_engine::{Artifact, EngineError, Executor, RunFailure, RunOutput};
use accord_model::{
    ArtifactName, ClaimRequest, ClaimResponse, ClaimedJob, CompleteRequest, DeferRequest,
    EgressAcquireRequest, EgressAcquireResponse, EgressFinishRequest, EgressOutcome, EgressWait,
    EgressWaitReason, Engine, ErrorKind, EscalateRequest, FailRequest, HeartbeatRequest,
    HeartbeatResponse, JobErrorCode, JobId, JobResult, JobSpec, LeaseRef, QueueName,
    ReleaseRequest, ReportResponse, RobotsLookupRequest, RobotsLookupResponse,
    RobotsPublishRequest, RunEngine, Sha256Digest, Step, StoredArtifact, TargetUrl, WorkerId,
};
use accord_worker::{ControlPlane, Engines, Worker, WorkerConfig};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The longest any test may take, in paused (virtual) time: it bounds every
/// wait, so a broken worker fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(3600);

// --- The control-plane double ------------------------------------------------

/// What the double has been asked and what it answers. Every call is
/// recorded, and every change is announced on `changed`, so a test waits for
/// an observable condition instead of for time to pass.
#[derive(Debug, Default)]
struct Server {
    /// Jobs waiting to be claimed.
    offered: VecDeque<ClaimedJob>,
    /// While set, every call fails as if the server were unreachable.
    down: bool,
    /// While set, `complete` and `fail` fail as if unreachable.
    reports_down: bool,
    /// Heartbeat answers: jobs to report cancelled, and leases to report lost.
    cancelled: HashSet<JobId>,
    lost: HashSet<JobId>,
    /// The `limit` of every claim that reached the server.
    claims: Vec<u32>,
    /// The engines of every claim that reached the server.
    claim_engines: Vec<Vec<RunEngine>>,
    /// The items of every `escalate` call: job and reason.
    escalated: Vec<(JobId, String)>,
    /// Times a claim found nothing and began to wait.
    polls: usize,
    /// Calls refused because the server was down.
    refused_claims: usize,
    refused_reports: usize,
    heartbeats: Vec<Vec<LeaseRef>>,
    /// The items of every accepted `complete` and `fail` call, call by call.
    completed: Vec<Vec<JobId>>,
    failed: Vec<Vec<(JobId, ErrorKind)>>,
    /// The code of every failure reported.
    fail_codes: HashMap<JobId, Option<JobErrorCode>>,
    released: Vec<Vec<JobId>>,
    /// Artifacts stored, in arrival order: job, attempt, name, digest.
    uploads: Vec<(JobId, u32, String, Sha256Digest)>,
    /// For each reported job, how many of its artifacts had arrived by then.
    uploaded_before_report: HashMap<JobId, usize>,
    /// While set, every permit request is answered with this wait.
    egress_wait: Option<EgressWait>,
    /// Permit requests: job and hosts.
    acquired: Vec<(JobId, Vec<String>)>,
    /// Ended permits: host and outcome.
    finished: Vec<(String, EgressOutcome)>,
    /// Deferred jobs and their delays.
    deferred: Vec<(JobId, u64)>,
}

impl Server {
    fn note_report(&mut self, job: JobId) {
        let arrived = self.uploads.iter().filter(|u| u.0 == job).count();
        self.uploaded_before_report.insert(job, arrived);
    }

    fn completed_jobs(&self) -> Vec<JobId> {
        self.completed.iter().flatten().copied().collect()
    }

    fn failed_jobs(&self) -> Vec<(JobId, ErrorKind)> {
        self.failed.iter().flatten().copied().collect()
    }

    fn released_jobs(&self) -> Vec<JobId> {
        self.released.iter().flatten().copied().collect()
    }
}

/// The double: shared between the worker (through [`ControlPlane`]) and the test.
#[derive(Debug, Clone)]
struct Double {
    server: Arc<Mutex<Server>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Double {
    fn new() -> Self {
        Self {
            server: Arc::new(Mutex::new(Server::default())),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Reads or changes the server's state, and tells whoever waits.
    fn with<T>(&self, f: impl FnOnce(&mut Server) -> T) -> T {
        let out = f(&mut self.server.lock().unwrap());
        self.changed.send_modify(|version| *version += 1);
        out
    }

    fn offer(&self, jobs: &[ClaimedJob]) {
        self.with(|server| server.offered.extend(jobs.iter().cloned()));
    }

    /// Waits, within [`LIMIT`], until `check` holds for the server's state.
    async fn until(&self, what: &str, check: impl Fn(&Server) -> bool) {
        let mut changed = self.changed.subscribe();
        let waited = tokio::time::timeout(LIMIT, async {
            loop {
                if check(&self.server.lock().unwrap()) {
                    return;
                }
                changed.changed().await.unwrap();
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting for {what}");
    }

    fn unreachable() -> ClientError {
        ClientError::Transport("connection refused (test double is down)".to_owned())
    }
}

#[async_trait::async_trait]
impl ControlPlane for Double {
    fn describe(&self) -> String {
        "test double".to_owned()
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimResponse, ClientError> {
        let deadline = Instant::now() + Duration::from_millis(request.wait_ms);
        let mut changed = self.changed.subscribe();
        loop {
            let taken = self.with(|server| {
                if server.down {
                    server.refused_claims += 1;
                    return Err(Self::unreachable());
                }
                // Like the store: only jobs of the claimed engines, most
                // urgent (here: first offered) first.
                let (mut taken, mut kept) = (Vec::new(), VecDeque::new());
                for job in server.offered.drain(..) {
                    if taken.len() < request.limit as usize && request.engines.contains(&job.run_on)
                    {
                        taken.push(job);
                    } else {
                        kept.push_back(job);
                    }
                }
                server.offered = kept;
                if !taken.is_empty() || Instant::now() >= deadline {
                    server.claims.push(request.limit);
                    server.claim_engines.push(request.engines.clone());
                    return Ok(Some(taken));
                }
                server.polls += 1;
                Ok(None)
            })?;
            if let Some(jobs) = taken {
                return Ok(ClaimResponse { jobs });
            }
            // Not woken by its own look, only by what changes after it.
            changed.borrow_and_update();
            // Long-poll: wait for an offer or the end of the wait.
            tokio::select! {
                _ = changed.changed() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.with(|server| {
            if server.down {
                return Err(Self::unreachable());
            }
            server.heartbeats.push(request.leases.clone());
            let ids: Vec<JobId> = request.leases.iter().map(|lease| lease.job_id).collect();
            let pick = |set: &HashSet<JobId>| {
                ids.iter()
                    .filter(|id| set.contains(id))
                    .copied()
                    .collect::<Vec<_>>()
            };
            let cancelled = pick(&server.cancelled);
            let lost = pick(&server.lost);
            let extended = ids
                .iter()
                .filter(|id| !cancelled.contains(id) && !lost.contains(id))
                .copied()
                .collect();
            Ok(HeartbeatResponse {
                extended,
                cancelled,
                lost,
            })
        })
    }

    async fn complete(&self, request: &CompleteRequest) -> Result<ReportResponse, ClientError> {
        self.with(|server| {
            if server.down || server.reports_down {
                server.refused_reports += 1;
                return Err(Self::unreachable());
            }
            let ids: Vec<JobId> = request.items.iter().map(|item| item.job_id).collect();
            for id in &ids {
                server.note_report(*id);
            }
            server.completed.push(ids.clone());
            Ok(ReportResponse::new(ids, Vec::new()))
        })
    }

    async fn fail(&self, request: &FailRequest) -> Result<ReportResponse, ClientError> {
        self.with(|server| {
            if server.down || server.reports_down {
                server.refused_reports += 1;
                return Err(Self::unreachable());
            }
            let items: Vec<(JobId, ErrorKind)> = request
                .items
                .iter()
                .map(|item| (item.job_id, item.error.kind))
                .collect();
            for (id, _) in &items {
                server.note_report(*id);
            }
            for item in &request.items {
                server.fail_codes.insert(item.job_id, item.error.code);
            }
            server.failed.push(items.clone());
            Ok(ReportResponse::new(
                items.into_iter().map(|(id, _)| id).collect(),
                Vec::new(),
            ))
        })
    }

    /// Stores what it is sent, except `over-quota.txt` (refused as over the
    /// quota) and anything of a job whose lease the test marked lost.
    async fn upload_artifact(
        &self,
        upload: ArtifactUpload<'_>,
    ) -> Result<StoredArtifact, ClientError> {
        self.with(|server| {
            if server.down {
                return Err(Self::unreachable());
            }
            let refuse = |status, code: &str| ClientError::Api {
                status,
                code: code.to_owned(),
                message: format!("refused by the test double: {code}"),
                details: None,
            };
            if server.lost.contains(&upload.lease.job_id) {
                return Err(refuse(409, "stale_lease"));
            }
            if upload.name.as_str() == "over-quota.txt" {
                return Err(refuse(413, "artifact_quota_exceeded"));
            }
            let sha256 = Sha256Digest::of(&upload.bytes);
            server.uploads.push((
                upload.lease.job_id,
                upload.lease.attempt,
                upload.name.to_string(),
                sha256,
            ));
            Ok(StoredArtifact {
                name: upload.name.clone(),
                content_type: upload.content_type.to_owned(),
                size: upload.bytes.len() as u64,
                sha256,
                attempt: upload.lease.attempt,
                created_at: chrono::Utc::now(),
            })
        })
    }

    async fn escalate(&self, request: &EscalateRequest) -> Result<ReportResponse, ClientError> {
        self.with(|server| {
            if server.down || server.reports_down {
                return Err(Self::unreachable());
            }
            let ids: Vec<JobId> = request.items.iter().map(|item| item.job_id).collect();
            server.escalated.extend(
                request
                    .items
                    .iter()
                    .map(|item| (item.job_id, item.reason.clone())),
            );
            Ok(ReportResponse::new(ids, Vec::new()))
        })
    }

    async fn egress_acquire(
        &self,
        request: &EgressAcquireRequest,
    ) -> Result<EgressAcquireResponse, ClientError> {
        self.with(|server| {
            if server.down {
                return Err(Self::unreachable());
            }
            server
                .acquired
                .push((request.job_id, request.hosts.clone()));
            Ok(match &server.egress_wait {
                Some(wait) => EgressAcquireResponse {
                    permit_id: None,
                    wait: Some(wait.clone()),
                },
                None => EgressAcquireResponse {
                    permit_id: Some(format!("permit-{}", request.job_id)),
                    wait: None,
                },
            })
        })
    }

    async fn egress_finish(&self, request: &EgressFinishRequest) -> Result<(), ClientError> {
        self.with(|server| {
            server.finished.extend(
                request
                    .items
                    .iter()
                    .map(|item| (item.host.clone(), item.outcome)),
            );
            Ok(())
        })
    }

    async fn defer(&self, request: &DeferRequest) -> Result<ReportResponse, ClientError> {
        self.with(|server| {
            if server.down || server.reports_down {
                return Err(Self::unreachable());
            }
            let ids: Vec<JobId> = request.items.iter().map(|item| item.job_id).collect();
            server.deferred.extend(
                request
                    .items
                    .iter()
                    .map(|item| (item.job_id, item.delay_ms)),
            );
            Ok(ReportResponse::new(ids, Vec::new()))
        })
    }

    /// Knows no shared answer and never holds a claim: each worker of
    /// these tests fetches robots.txt itself, as with a control plane that
    /// has nothing stored yet.
    async fn robots_lookup(
        &self,
        _request: &RobotsLookupRequest,
    ) -> Result<RobotsLookupResponse, ClientError> {
        self.with(|server| {
            if server.down {
                return Err(Self::unreachable());
            }
            Ok(RobotsLookupResponse::Fetch {
                claimed_until: chrono::Utc::now() + chrono::TimeDelta::seconds(30),
            })
        })
    }

    async fn robots_publish(&self, _request: &RobotsPublishRequest) -> Result<(), ClientError> {
        self.with(|server| {
            if server.down {
                return Err(Self::unreachable());
            }
            Ok(())
        })
    }

    async fn release(&self, request: &ReleaseRequest) -> Result<ReportResponse, ClientError> {
        self.with(|server| {
            if server.down {
                return Err(Self::unreachable());
            }
            let ids: Vec<JobId> = request.leases.iter().map(|lease| lease.job_id).collect();
            server.released.push(ids.clone());
            Ok(ReportResponse::new(ids, Vec::new()))
        })
    }
}

// --- The test engine ---------------------------------------------------------

/// How a test job behaves, chosen by the path of its URL.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Succeeds at once.
    Quick,
    /// Succeeds after this long.
    Takes(Duration),
    /// Never finishes on its own.
    Hangs,
    /// Finds that the page needs a browser (what the HTTP engine says of
    /// an `auto` job's client-rendered page).
    NeedsBrowser,
    /// Succeeds with three artifacts, the middle one refused by the double.
    Captures,
    /// Fails (permanently) with a screenshot of the moment.
    FailsWithCapture,
    /// Succeeds on another page than it was sent to (a browser that
    /// followed a redirect on its own), with a capture.
    LandsOn(&'static str),
}

/// A real engine error: an `assert` of status 200 on a page that answered 500.
fn failed_assertion() -> EngineError {
    let assert: Step = serde_json::from_str(r#"{"action":"assert","status":200}"#).unwrap();
    accord_engine::process_page(
        "<p>down</p>",
        500,
        &[assert],
        &accord_engine::PageLimits::default(),
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap_err()
}

fn captured(name: &str, bytes: &'static [u8]) -> Artifact {
    Artifact::new(ArtifactName::new(name).unwrap(), "text/plain", bytes)
}

/// Runs jobs as their [`Behaviour`] says and records which started and finished.
#[derive(Debug, Clone)]
struct TestEngine {
    behaviours: Arc<HashMap<String, Behaviour>>,
    runs: Arc<watch::Sender<Runs>>,
}

#[derive(Debug, Clone, Default)]
struct Runs {
    started: Vec<String>,
    finished: Vec<String>,
    /// Runs the worker stopped (timed out, cancelled, lost, shutting down).
    halted: Vec<String>,
}

impl TestEngine {
    fn new(behaviours: &[(&str, Behaviour)]) -> Self {
        Self {
            behaviours: Arc::new(
                behaviours
                    .iter()
                    .map(|(path, behaviour)| ((*path).to_owned(), *behaviour))
                    .collect(),
            ),
            runs: Arc::new(watch::Sender::new(Runs::default())),
        }
    }

    async fn until(&self, what: &str, check: impl Fn(&Runs) -> bool) {
        let mut runs = self.runs.subscribe();
        let waited = tokio::time::timeout(LIMIT, runs.wait_for(|runs| check(runs))).await;
        assert!(waited.is_ok(), "timed out waiting for {what}");
    }
}

#[async_trait::async_trait]
impl Executor for TestEngine {
    async fn run(&self, spec: &JobSpec, stop: &CancellationToken) -> Result<RunOutput, RunFailure> {
        let Some(Step::Navigate { url, .. }) = spec.steps.first() else {
            panic!("test jobs start with navigate");
        };
        let path = url.as_url().path().to_owned();
        self.runs
            .send_modify(|runs| runs.started.push(path.clone()));
        // Like a real engine, a run ends promptly once told to stop; what
        // it returns then is ignored.
        let stopped = match self.behaviours[&path] {
            Behaviour::Quick | Behaviour::Captures | Behaviour::FailsWithCapture => false,
            Behaviour::LandsOn(landed) => {
                let result = JobResult {
                    extracted: Default::default(),
                    status: 200,
                    final_url: landed.to_owned(),
                    timings: Default::default(),
                    engine: RunEngine::Browser,
                    engine_reason: None,
                    artifacts: Vec::new(),
                };
                self.runs
                    .send_modify(|runs| runs.finished.push(path.clone()));
                return Ok(RunOutput {
                    result,
                    artifacts: vec![captured("page.html", b"<p>elsewhere</p>")],
                });
            }
            Behaviour::Takes(duration) => tokio::select! {
                () = tokio::time::sleep(duration) => false,
                () = stop.cancelled() => true,
            },
            Behaviour::Hangs => {
                stop.cancelled().await;
                true
            }
            Behaviour::NeedsBrowser => {
                return Err(EngineError::needs_browser(0, "the page renders on the client").into());
            }
        };
        if stopped {
            self.runs.send_modify(|runs| runs.halted.push(path.clone()));
            return Ok(RunOutput::from(JobResult {
                extracted: Default::default(),
                status: 0,
                final_url: url.to_string(),
                timings: Default::default(),
                engine: RunEngine::Http,
                engine_reason: None,
                artifacts: Vec::new(),
            }));
        }
        self.runs
            .send_modify(|runs| runs.finished.push(path.clone()));
        let result = JobResult {
            extracted: Default::default(),
            status: 200,
            final_url: url.to_string(),
            timings: Default::default(),
            engine: RunEngine::Http,
            engine_reason: None,
            artifacts: Vec::new(),
        };
        match self.behaviours[&path] {
            Behaviour::Captures => Ok(RunOutput {
                result,
                artifacts: vec![
                    captured("page.html", b"<p>page</p>"),
                    captured("over-quota.txt", b"too much"),
                    captured("log.txt", b"console"),
                ],
            }),
            Behaviour::FailsWithCapture => Err(RunFailure {
                error: failed_assertion(),
                artifacts: vec![captured("failure.png", b"\x89PNG at the moment")],
            }),
            _ => Ok(RunOutput::from(result)),
        }
    }
}

// --- Helpers -----------------------------------------------------------------

/// A claimed job whose URL path names its behaviour in the [`TestEngine`].
fn job(path: &str, timeout_seconds: u32) -> ClaimedJob {
    let now = chrono::Utc::now();
    ClaimedJob {
        job_id: JobId::new(),
        attempt: 1,
        lease_expires_at: now + chrono::Duration::seconds(30),
        due_at: now,
        queue: QueueName::default(),
        spec: JobSpec {
            engine: Engine::Http,
            steps: vec![Step::Navigate {
                url: TargetUrl::parse(&format!("https://example.com{path}")).unwrap(),
                accept_error_status: false,
                wait_until: Default::default(),
            }],
            timeout_seconds,
        },
        run_on: RunEngine::Http,
        engine_reason: None,
        policies: None,
    }
}

/// A job like [`job`] of the given engine, running on `run_on`.
fn job_on(path: &str, engine: Engine, run_on: RunEngine) -> ClaimedJob {
    let mut job = job(path, 60);
    job.spec.engine = engine;
    job.run_on = run_on;
    job
}

fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        claim_wait: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(30),
        ..WorkerConfig::new(WorkerId::new("test-worker").unwrap())
    }
}

/// A worker running on the double and the engine until the returned token is cancelled.
struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Like [`start`], with `browser` as the worker's browser engine.
fn start_with_browser(
    double: &Double,
    http: &TestEngine,
    browser: &TestEngine,
    config: WorkerConfig,
) -> Running {
    let shutdown = CancellationToken::new();
    let engines = Engines::with_browser(Arc::new(http.clone()), Arc::new(browser.clone()));
    let worker = Worker::new(double.clone(), engines, config);
    let task = tokio::spawn(worker.run(shutdown.clone()));
    Running { shutdown, task }
}

fn start(double: &Double, engine: &TestEngine, config: WorkerConfig) -> Running {
    let shutdown = CancellationToken::new();
    let worker = Worker::new(
        double.clone(),
        Engines::http_only(Arc::new(engine.clone())),
        config,
    );
    let task = tokio::spawn(worker.run(shutdown.clone()));
    Running { shutdown, task }
}

impl Running {
    /// Asks the worker to stop and waits, within [`LIMIT`], until it has.
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("the worker stops")
            .unwrap();
    }
}

fn ids(jobs: &[ClaimedJob]) -> HashSet<JobId> {
    jobs.iter().map(|job| job.job_id).collect()
}

// --- Tests -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn claims_as_many_jobs_as_it_has_slots_and_completes_each_once() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/quick", Behaviour::Quick)]);
    let jobs: Vec<ClaimedJob> = (0..3).map(|_| job("/quick", 60)).collect();
    double.offer(&jobs);
    let worker = start(&double, &engine, config(8));

    double
        .until("three completions", |s| s.completed_jobs().len() == 3)
        .await;
    // The claim sent while the three ran asked for the five free slots; the
    // one after it, for all eight again.
    double
        .until("a claim after the reports", |s| s.claims.len() >= 3)
        .await;
    worker.stop().await;

    double.with(|server| {
        assert_eq!(server.claims[..3], [8, 5, 8], "every free slot is claimed");
        let completed = server.completed_jobs();
        assert_eq!(completed.len(), 3, "each job is reported once");
        assert_eq!(completed.into_iter().collect::<HashSet<_>>(), ids(&jobs));
        assert!(server.failed.is_empty() && server.released.is_empty());
    });
}

#[tokio::test(start_paused = true)]
async fn a_full_worker_claims_only_what_frees_up() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/slow", Behaviour::Takes(Duration::from_secs(5)))]);
    double.offer(&(0..3).map(|_| job("/slow", 60)).collect::<Vec<_>>());
    let worker = start(&double, &engine, config(2));

    double
        .until("all three completed", |s| s.completed_jobs().len() == 3)
        .await;
    worker.stop().await;

    double.with(|server| {
        assert_eq!(
            server.claims,
            [2, 2],
            "two slots at first, then the two freed by one report, in one claim \
             (the claim for the last free slot was still waiting at shutdown)"
        );
    });
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_stops_cancelled_and_lost_jobs_and_renews_the_rest() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/hang", Behaviour::Hangs)]);
    let jobs: Vec<ClaimedJob> = (0..3).map(|_| job("/hang", 600)).collect();
    let (cancelled, lost, kept) = (jobs[0].job_id, jobs[1].job_id, jobs[2].job_id);
    double.with(|server| {
        server.cancelled.insert(cancelled);
        server.lost.insert(lost);
    });
    double.offer(&jobs);
    let worker = start(&double, &engine, config(8));

    engine
        .until("three jobs running", |runs| runs.started.len() == 3)
        .await;
    double
        .until("a heartbeat without the stopped jobs", |s| {
            s.heartbeats
                .last()
                .is_some_and(|leases| leases.len() == 1 && leases[0].job_id == kept)
        })
        .await;
    double.with(|server| {
        assert_eq!(
            server.heartbeats[0].len(),
            3,
            "the first heartbeat carries every lease"
        );
        assert!(
            server.completed.is_empty() && server.failed.is_empty(),
            "a stopped job reports nothing"
        );
    });
    worker.stop().await;
    double.with(|server| {
        assert_eq!(
            server.released_jobs(),
            [kept],
            "on shutdown only the job still running is given back"
        );
    });
}

#[tokio::test(start_paused = true)]
async fn reports_wait_out_an_outage_in_one_batch_while_their_leases_stay_renewed() {
    let double = Double::new();
    let engine = TestEngine::new(&[
        ("/quick", Behaviour::Quick),
        ("/later", Behaviour::Takes(Duration::from_secs(1))),
    ]);
    let first = job("/quick", 60);
    let later: Vec<ClaimedJob> = (0..4).map(|_| job("/later", 60)).collect();
    double.with(|server| server.reports_down = true);
    double.offer(&[vec![first.clone()], later.clone()].concat());
    let worker = start(&double, &engine, config(8));

    // Every job finishes while reports cannot get through.
    engine
        .until("five jobs finished", |runs| runs.finished.len() == 5)
        .await;
    double
        .until("a refused report", |s| s.refused_reports >= 1)
        .await;
    // Undelivered outcomes keep their leases alive.
    let before = double.with(|server| server.heartbeats.len());
    double
        .until("a heartbeat with all five leases", |s| {
            s.heartbeats.len() > before && s.heartbeats.last().is_some_and(|l| l.len() == 5)
        })
        .await;
    double.with(|server| {
        assert!(server.completed.is_empty());
        server.reports_down = false;
    });

    double
        .until("all five completed", |s| s.completed_jobs().len() == 5)
        .await;
    worker.stop().await;
    double.with(|server| {
        assert_eq!(
            server.completed.len(),
            2,
            "the retried report, then everything that piled up meanwhile in one call"
        );
        assert_eq!(server.completed[0], [first.job_id]);
        let piled: HashSet<JobId> = server.completed[1].iter().copied().collect();
        assert_eq!(piled, ids(&later));
        assert!(server.released.is_empty(), "nothing was left to give back");
    });
}

#[tokio::test(start_paused = true)]
async fn a_job_past_its_timeout_is_reported_failed_as_a_timeout() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/hang", Behaviour::Hangs)]);
    let stuck = job("/hang", 5);
    double.offer(std::slice::from_ref(&stuck));
    let started = Instant::now();
    let worker = start(&double, &engine, config(1));

    double.until("a failure", |s| !s.failed.is_empty()).await;
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "not before the timeout"
    );
    assert_eq!(
        engine.runs.borrow().halted,
        ["/hang"],
        "the run was told to stop, and had ended, before its failure was reported"
    );
    worker.stop().await;
    double.with(|server| {
        assert_eq!(server.failed_jobs(), [(stuck.job_id, ErrorKind::Timeout)]);
    });
}

/// Policies that deny every host named `*.denied.example`.
fn denying(mut job: ClaimedJob) -> ClaimedJob {
    job.policies = Some(
        serde_json::from_value(serde_json::json!({"policies": [
            {"pattern": "*.denied.example", "rules": {"allowed": false, "obey_robots": true}},
        ]}))
        .unwrap(),
    );
    job
}

#[tokio::test(start_paused = true)]
async fn jobs_their_policies_deny_fail_with_policy_denied_before_or_after_the_run() {
    let double = Double::new();
    let engine = TestEngine::new(&[
        ("/ok", Behaviour::Quick),
        (
            "/lands",
            Behaviour::LandsOn("https://www.denied.example/after"),
        ),
    ]);
    let mut named = denying(job("/ok", 60));
    named.spec.steps = vec![Step::Navigate {
        url: TargetUrl::parse("https://a.denied.example/ok").unwrap(),
        accept_error_status: false,
        wait_until: Default::default(),
    }];
    let landed = denying(job("/lands", 60));
    let allowed = denying(job("/ok", 60));
    double.offer(&[named.clone(), landed.clone(), allowed.clone()]);
    let worker = start(&double, &engine, config(3));
    double
        .until("three reports", |s| {
            s.completed_jobs().len() + s.failed_jobs().len() == 3
        })
        .await;
    worker.stop().await;
    double.with(|server| {
        assert_eq!(server.completed_jobs(), [allowed.job_id]);
        for id in [named.job_id, landed.job_id] {
            assert!(
                server.failed_jobs().contains(&(id, ErrorKind::Permanent)),
                "{:?}",
                server.failed
            );
            assert_eq!(server.fail_codes[&id], Some(JobErrorCode::PolicyDenied));
        }
        // Nothing captured on the denied host went up.
        assert!(server.uploads.iter().all(|u| u.0 != landed.job_id));
    });
    // The job naming a denied host never ran; the other ran and was refused after.
    let mut started = engine.runs.borrow().started.clone();
    started.sort();
    assert_eq!(started, ["/lands", "/ok"]);
}

#[tokio::test(start_paused = true)]
async fn failed_claims_back_off_then_recover() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/quick", Behaviour::Quick)]);
    double.with(|server| server.down = true);
    double.offer(&[job("/quick", 60)]);
    let started = Instant::now();
    let worker = start(&double, &engine, config(1));

    double
        .until("four refused claims", |s| s.refused_claims >= 4)
        .await;
    // The pauses grow from 250 ms, each at least half its step: at least
    // 0 + 125 + 250 + 500 ms before the fourth try.
    assert!(started.elapsed() >= Duration::from_millis(875));
    double.with(|server| server.down = false);
    double
        .until("the job completed", |s| s.completed_jobs().len() == 1)
        .await;
    worker.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_claiming_lets_jobs_finish_then_releases_the_rest() {
    let double = Double::new();
    let engine = TestEngine::new(&[
        ("/slow", Behaviour::Takes(Duration::from_secs(5))),
        ("/hang", Behaviour::Hangs),
    ]);
    let (slow, stuck) = (job("/slow", 600), job("/hang", 600));
    double.offer(&[slow.clone(), stuck.clone()]);
    let worker = start(&double, &engine, config(8));
    engine
        .until("both jobs running", |runs| runs.started.len() == 2)
        .await;
    let claims = double.with(|server| server.claims.len());

    let asked = Instant::now();
    worker.stop().await;
    let took = asked.elapsed();

    assert!(
        took >= Duration::from_secs(30),
        "the grace period is waited out for the job that hangs ({took:?})"
    );
    double.with(|server| {
        assert_eq!(
            server.claims.len(),
            claims,
            "no claim after shutdown, and the waiting one was dropped"
        );
        assert_eq!(
            server.completed_jobs(),
            [slow.job_id],
            "the job that finished within the grace period was reported"
        );
        assert_eq!(server.released_jobs(), [stuck.job_id]);
    });
}

#[tokio::test(start_paused = true)]
async fn an_idle_worker_stops_at_once_without_waiting_out_its_claim() {
    let double = Double::new();
    let engine = TestEngine::new(&[]);
    let worker = start(
        &double,
        &engine,
        WorkerConfig {
            claim_wait: Duration::from_secs(600),
            ..config(1)
        },
    );
    double.until("a waiting claim", |s| s.polls >= 1).await;
    let asked = Instant::now();
    worker.stop().await;
    assert!(
        asked.elapsed() < Duration::from_secs(600),
        "the long-poll was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn artifacts_go_up_before_the_outcome_whether_it_succeeded_or_failed() {
    let double = Double::new();
    let engine = TestEngine::new(&[
        ("/captures", Behaviour::Captures),
        ("/fails", Behaviour::FailsWithCapture),
    ]);
    let (good, bad) = (job("/captures", 60), job("/fails", 60));
    double.offer(&[good.clone(), bad.clone()]);
    let worker = start(&double, &engine, config(2));
    double
        .until("both reported", |s| s.uploaded_before_report.len() == 2)
        .await;
    worker.stop().await;

    double.with(|server| {
        let names = |job: JobId| -> Vec<String> {
            server
                .uploads
                .iter()
                .filter(|u| u.0 == job)
                .map(|u| u.2.clone())
                .collect()
        };
        // The refused upload is skipped; the job still completes, after
        // everything that could arrive had arrived.
        assert_eq!(names(good.job_id), ["page.html", "log.txt"]);
        assert_eq!(server.completed_jobs(), [good.job_id]);
        assert_eq!(server.uploaded_before_report[&good.job_id], 2);
        // A failed run's capture goes up too, before the failure.
        assert_eq!(names(bad.job_id), ["failure.png"]);
        assert_eq!(server.failed_jobs(), [(bad.job_id, ErrorKind::Permanent)]);
        assert_eq!(server.uploaded_before_report[&bad.job_id], 1);
        // Each went up with its attempt and its bytes intact.
        assert!(server.uploads.iter().all(|u| u.1 == 1));
        assert!(server
            .uploads
            .iter()
            .any(|u| u.2 == "log.txt" && u.3 == Sha256Digest::of(b"console")));
    });
}

#[tokio::test(start_paused = true)]
async fn an_http_only_worker_never_claims_browser_jobs() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/quick", Behaviour::Quick)]);
    let browser_job = job_on("/quick", Engine::Browser, RunEngine::Browser);
    let http_job = job("/quick", 60);
    double.offer(&[browser_job.clone(), http_job.clone()]);
    let worker = start(&double, &engine, config(4));

    double
        .until("the HTTP job completed", |s| s.completed_jobs().len() == 1)
        .await;
    double
        .until("a claim after the report", |s| s.claims.len() >= 2)
        .await;
    worker.stop().await;

    double.with(|server| {
        assert_eq!(server.completed_jobs(), vec![http_job.job_id]);
        assert!(
            server
                .claim_engines
                .iter()
                .all(|engines| engines == &[RunEngine::Http]),
            "every claim asked for HTTP jobs only: {:?}",
            server.claim_engines
        );
        assert_eq!(
            server
                .offered
                .iter()
                .map(|job| job.job_id)
                .collect::<Vec<_>>(),
            vec![browser_job.job_id],
            "the browser job is still waiting for a browser worker"
        );
    });
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_browser_jobs_does_not_starve_http_jobs() {
    let double = Double::new();
    let http = TestEngine::new(&[("/quick", Behaviour::Quick)]);
    let browser = TestEngine::new(&[("/hang", Behaviour::Hangs)]);
    // Ten hanging browser jobs ahead of three HTTP jobs in the queue.
    let mut offered: Vec<ClaimedJob> = (0..10)
        .map(|_| job_on("/hang", Engine::Browser, RunEngine::Browser))
        .collect();
    let http_jobs: Vec<ClaimedJob> = (0..3).map(|_| job("/quick", 60)).collect();
    offered.extend(http_jobs.iter().cloned());
    double.offer(&offered);
    let config = WorkerConfig {
        browser_slots: 2,
        ..config(4)
    };
    let worker = start_with_browser(&double, &http, &browser, config);

    double
        .until("the HTTP jobs completed", |s| s.completed_jobs().len() == 3)
        .await;
    browser
        .until("both browser slots busy", |runs| runs.started.len() == 2)
        .await;
    double.with(|server| {
        assert_eq!(
            server.completed_jobs().into_iter().collect::<HashSet<_>>(),
            ids(&http_jobs)
        );
        assert_eq!(
            server.offered.len(),
            8,
            "only two browser jobs were taken, one per slot"
        );
        assert!(server.claims.iter().zip(&server.claim_engines).all(
            |(limit, engines)| match engines[..] {
                [RunEngine::Browser] => *limit <= 2,
                [RunEngine::Http] => *limit <= 4,
                _ => false,
            }
        ));
    });
    worker.stop().await;
    assert_eq!(
        http.runs.borrow().started.len(),
        3,
        "HTTP jobs ran on the HTTP engine"
    );
}

#[tokio::test(start_paused = true)]
async fn an_auto_job_that_needs_a_browser_is_handed_over_not_failed() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/spa", Behaviour::NeedsBrowser)]);
    let auto = job_on("/spa", Engine::Auto, RunEngine::Http);
    // The same finding on a plain HTTP job is an ordinary failure.
    let plain = job("/spa", 60);
    double.offer(&[auto.clone(), plain.clone()]);
    let worker = start(&double, &engine, config(4));

    double
        .until("both reported", |s| {
            s.escalated.len() == 1 && s.failed_jobs().len() == 1
        })
        .await;
    worker.stop().await;

    double.with(|server| {
        assert_eq!(
            server.escalated,
            vec![(auto.job_id, "the page renders on the client".to_owned())]
        );
        assert_eq!(
            server.failed_jobs(),
            vec![(plain.job_id, ErrorKind::Retryable)]
        );
        assert!(server.completed_jobs().is_empty());
    });
}

#[tokio::test(start_paused = true)]
async fn every_job_asks_for_its_domain_and_says_how_the_site_answered() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/ok", Behaviour::Quick)]);
    let first = job("/ok", 60);
    double.offer(std::slice::from_ref(&first));
    let worker = start(&double, &engine, config(2));
    double
        .until("the job completed and its permit ended", |s| {
            s.completed_jobs().len() == 1 && s.finished.len() == 1
        })
        .await;
    worker.stop().await;
    double.with(|server| {
        assert_eq!(
            server.acquired,
            vec![(first.job_id, vec!["example.com".to_owned()])]
        );
        assert_eq!(
            server.finished,
            vec![("example.com".to_owned(), EgressOutcome::Success)]
        );
    });
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_domain_must_wait_long_is_deferred_unrun() {
    let double = Double::new();
    let engine = TestEngine::new(&[("/paused", Behaviour::Quick)]);
    let paused = job("/paused", 60);
    double.with(|server| {
        server.egress_wait = Some(EgressWait {
            host: "example.com".to_owned(),
            reason: EgressWaitReason::Paused,
            retry_in_ms: 30_000,
            until: None,
        });
    });
    double.offer(std::slice::from_ref(&paused));
    let worker = start(&double, &engine, config(2));
    double
        .until("the job was deferred", |s| !s.deferred.is_empty())
        .await;
    worker.stop().await;
    double.with(|server| {
        assert_eq!(server.deferred, vec![(paused.job_id, 30_000)]);
        assert!(server.completed_jobs().is_empty());
        assert!(server.failed_jobs().is_empty());
    });
    assert!(
        engine.runs.borrow().started.is_empty(),
        "a deferred job never reaches the engine"
    );
}
