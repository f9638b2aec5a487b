//! [`Store`]: every sub-trait together, for the composition root and for
//! callers that hold one handle to the whole database (`Arc<dyn Store>`).
//! It has no methods of its own: bring the sub-trait whose methods you call
//! into scope (`use accord_store::JobStore;`).

use std::fmt;

use crate::{
    AccessStore, ArtifactStore, AuditStore, BackendStore, CoordinationStore, DomainStore,
    FeedStore, ItemHistoryStore, JobStore, LeaseStore, MaintenanceStore, MonitorStore,
    NotificationStore, PolicyStore, RobotsStore, WorkflowRunStore,
};

/// Durable storage of jobs, their leases and events, access, audit and the
/// artifact index, monitors, notifications, workflow runs, domain policies,
/// feeds, item histories, shared robots.txt answers.
pub trait Store:
    BackendStore
    + CoordinationStore
    + JobStore
    + LeaseStore
    + AccessStore
    + AuditStore
    + MaintenanceStore
    + DomainStore
    + ArtifactStore
    + MonitorStore
    + NotificationStore
    + WorkflowRunStore
    + PolicyStore
    + FeedStore
    + ItemHistoryStore
    + RobotsStore
    + fmt::Debug
    + 'static
{
}

impl<T> Store for T where
    T: BackendStore
        + CoordinationStore
        + JobStore
        + LeaseStore
        + AccessStore
        + AuditStore
        + MaintenanceStore
        + DomainStore
        + ArtifactStore
        + MonitorStore
        + NotificationStore
        + WorkflowRunStore
        + PolicyStore
        + FeedStore
        + ItemHistoryStore
        + RobotsStore
        + fmt::Debug
        + 'static
{
}
