//! Accord's domain model: the types every other crate speaks.
//!
//! Owns ids, the job specification (`NewJob`, `Step`), job states and their
//! meaning, results and errors, artifact references and evidence manifests, job events, the retry policy, the backoff
//! of background retries, the worker protocol messages and the clock
//! abstraction, notification targets, subscriptions and deliveries, and
//! domain policies with the pure rule of which one applies to a host.
//!
//! Deliberately does not do IO: no database, no network, no file system.
//! Values are validated when they are parsed (at the API boundary) so the rest
//! of the system can trust them.

mod address;
mod artifact;
mod auth;
mod auto;
mod backoff;
mod clock;
mod egress;
mod event;
mod feed;
mod field;
mod ids;
mod job;
mod manifest;
mod monitor;
mod monitor_history;
mod notification;
mod policy;
mod politeness;
mod protocol;
mod result;
mod retry;
mod robots_share;
mod selector;
mod spec;
mod step;
mod target;
mod wire;
mod workflow_run;

pub use address::{classify_ip, embedded_ipv4, AddressClass};
pub use artifact::{
    check_content_type, ArtifactList, ArtifactName, ArtifactNameError, ArtifactRef,
    ContentTypeError, DigestError, Sha256Digest, StoredArtifact, MAX_ARTIFACT_NAME_BYTES,
    MAX_CONTENT_TYPE_BYTES,
};
pub use auth::{
    check_workspace_name, ApiKey, ApiKeyId, ApiKeyList, ApiToken, AuditEntry, AuditOutcome,
    AuditPage, CreatedApiKey, NewApiKey, NewAuditEntry, NewWorkspace, Permission, RateLimit, Role,
    WorkerScope, Workspace, WorkspaceList,
};
pub use auto::{auto_domain, auto_needs_browser};
pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use egress::EgressPolicy;
pub use event::{EventKind, JobEvent};
pub use feed::{
    is_feed_token_shaped, CreatedFeedToken, FeedToken, FeedTokenId, FeedTokenList, FeedTokenView,
    NewFeedToken, FEED_TOKEN_PREFIX, FEED_TOKEN_SECRET_LEN, MAX_FEED_ENTRIES, MAX_FEED_TOKENS,
};
pub use field::{
    FieldError, FieldSource, FieldSpec, ItemField, ItemsSpec, JsonPathQuery, JsonPointer,
    JsonQueryError, ReadAs, MAX_JSON_QUERY_BYTES, MAX_JSON_QUERY_NESTING,
};
pub use ids::{IdError, JobId, QueueName, WorkerId, WorkspaceId};
pub use job::{Job, JobState, Priority};
pub use manifest::{
    canonical_json, EvidenceManifest, ManifestOutcome, MANIFEST_NAME_PREFIX, MANIFEST_VERSION,
};
pub use monitor::{
    check_tag, parse_interval, Monitor, MonitorId, MonitorPage, MonitorPatch, MonitorRun,
    MonitorView, NewMonitor, RunPage, RunState, RunTrigger, Schedule, ScheduleSpec, Series,
    SeriesPoint, UnknownWorkflow, WorkflowKind, WorkflowList, WorkflowView, CRON_MAX_JITTER_MS,
    DEFAULT_MIN_INTERVAL_SECONDS, JITTER_FRACTION, MAX_TAGS,
};
pub use monitor_history::{
    DiffEnd, ItemPage, ItemRecord, ItemStateFilter, ItemStatus, RunDiff, SeenAt, SnapshotPage,
    SnapshotView, VisualHighlight, MAX_ITEM_QUERY_CHARS,
};
pub use notification::{
    check_subscriptions, AttemptView, CreatedTarget, DeliveryPage, DeliveryState, DeliveryView,
    EmailAddress, EmailRecipients, MessageId, NewTarget, Notice, NoticeMonitor, NoticeRun,
    NotifyEvent, PreviousSecret, Subscription, Target, TargetAddress, TargetId, TargetKind,
    TargetList, TargetPatch, TargetView, WebhookSecret, MAX_SUBSCRIPTIONS, SECRET_BYTES,
    SECRET_PREFIX,
};
pub use policy::{
    effective_policy, sort_by_specificity, Cidr, DomainPattern, DomainPolicy, EffectivePolicy,
    NewPolicy, OnOpenBreaker, PolicyDenial, PolicyEntry, PolicyId, PolicyList, PolicyPatch,
    PolicyRules, PolicySet, PolicyView, StepKind, MAX_POLICIES, MAX_POLICY_CIDRS,
};
pub use politeness::{
    BreakerReason, BreakerStatus, BreakerTransition, DeferItem, DeferRequest, DomainEngineView,
    DomainList, DomainSummary, DomainWindow, EgressAcquireRequest, EgressAcquireResponse,
    EgressFinishItem, EgressFinishRequest, EgressOutcome, EgressWait, EgressWaitReason, HostLimits,
    MAX_BREAKER_HISTORY, MAX_CRAWL_DELAY_MS, MAX_EGRESS_HOLD_MS, MAX_EGRESS_HOSTS,
};
pub use protocol::{
    ClaimRequest, ClaimResponse, ClaimedJob, CompleteItem, CompleteRequest, EscalateItem,
    EscalateRequest, FailItem, FailRequest, HeartbeatRequest, HeartbeatResponse, LeaseRef,
    RejectReason, RejectedItem, ReleaseRequest, ReportResponse,
};
pub use result::{ErrorKind, ExtractedValue, JobError, JobErrorCode, JobResult, Timings};
pub use retry::{Failure, Next, RetryPolicy};
pub use robots_share::{
    RobotsLookupRequest, RobotsLookupResponse, RobotsPublishRequest, RobotsRecord, RobotsStatus,
    MAX_ROBOTS_TTL_MS, MAX_SHARED_ROBOTS_BYTES, ROBOTS_CLAIM_MS,
};
pub use selector::{CssSelector, SelectorError, MAX_SELECTOR_BYTES, MAX_SELECTOR_NESTING};
pub use spec::{
    Engine, JobSpec, Limits, NewJob, RunEngine, ValidationError, RESERVED_ARTIFACT_NAMES,
};
pub use step::{
    Capability, DownloadSource, ElementState, KeyName, KeyNameError, Step, StepError, StepText,
    UrlPattern, UrlPatternError, WaitCondition, WaitUntil, MAX_CAPTURE_BODY_BYTES,
    MAX_DOWNLOAD_BYTES, MAX_EXPRESSION_BYTES, MAX_FIELD_NAME_BYTES, MAX_SCROLL_ROUNDS,
    MAX_STEP_TEXT_BYTES, MAX_URL_PATTERN_BYTES, MAX_WAIT_MS, SCREENSHOT_HEIGHTS, SCREENSHOT_WIDTHS,
};
pub use target::{TargetUrl, TargetUrlError};
pub use wire::{
    ErrorBody, ErrorDetail, EventPage, HealthView, JobBatch, JobPage, NewJobBatch, OpsStatus,
    QueueStatsView, Throughput,
};
pub use workflow_run::{NewWorkflowRun, WorkflowRunView};
