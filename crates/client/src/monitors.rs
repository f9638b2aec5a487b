//! The monitor and workflow routes: `/api/v1/monitors` and
//! `/api/v1/workflows`.

use std::time::Duration;

use accord_model::{MonitorId, MonitorPatch, MonitorRun, MonitorView, NewMonitor, SeriesPoint};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::{AccordClient, ClientError};

/// A page of monitors, as `GET /api/v1/monitors` answers.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MonitorPage {
    pub items: Vec<MonitorView>,
    pub next_cursor: Option<String>,
}

/// A page of a monitor's runs, newest first.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RunPage {
    pub items: Vec<MonitorRun>,
    pub next_cursor: Option<i64>,
}

/// A monitor's tracked values, oldest first.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Series {
    pub points: Vec<SeriesPoint>,
}

/// One built-in workflow with its input's JSON Schema.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WorkflowView {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WorkflowList {
    pub workflows: Vec<WorkflowView>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl AccordClient {
    pub async fn workflows(&self) -> Result<WorkflowList, ClientError> {
        self.get("api/v1/workflows").await
    }

    pub async fn workflow(&self, name: &str) -> Result<WorkflowView, ClientError> {
        self.get(&format!("api/v1/workflows/{name}")).await
    }

    pub async fn create_monitor(&self, monitor: &NewMonitor) -> Result<MonitorView, ClientError> {
        self.post("api/v1/monitors", monitor, TIMEOUT).await
    }

    pub async fn list_monitors(
        &self,
        tag: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<MonitorPage, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(tag) = tag {
            query.push(("tag", tag.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let request = self
            .request(Method::GET, "api/v1/monitors")
            .query(&query)
            .timeout(TIMEOUT);
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
            .timeout(TIMEOUT);
        self.send(request).await.map(|(_, view)| view)
    }

    /// Deletes a monitor (its runs' jobs stay until job retention).
    pub async fn delete_monitor(&self, id: MonitorId) -> Result<(), ClientError> {
        let response = self
            .request(Method::DELETE, &format!("api/v1/monitors/{id}"))
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = response.bytes().await.map_err(ClientError::transport)?;
        Err(ClientError::from_body(status, &body))
    }

    pub async fn pause_monitor(&self, id: MonitorId) -> Result<MonitorView, ClientError> {
        self.post(
            &format!("api/v1/monitors/{id}/pause"),
            &serde_json::json!({}),
            TIMEOUT,
        )
        .await
    }

    pub async fn resume_monitor(&self, id: MonitorId) -> Result<MonitorView, ClientError> {
        self.post(
            &format!("api/v1/monitors/{id}/resume"),
            &serde_json::json!({}),
            TIMEOUT,
        )
        .await
    }

    /// Starts a run now, outside the schedule.
    pub async fn run_monitor(&self, id: MonitorId) -> Result<MonitorRun, ClientError> {
        self.post(
            &format!("api/v1/monitors/{id}/run"),
            &serde_json::json!({}),
            TIMEOUT,
        )
        .await
    }

    pub async fn monitor_runs(
        &self,
        id: MonitorId,
        limit: Option<u32>,
        cursor: Option<i64>,
    ) -> Result<RunPage, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_string()));
        }
        let request = self
            .request(Method::GET, &format!("api/v1/monitors/{id}/runs"))
            .query(&query)
            .timeout(TIMEOUT);
        self.send(request).await.map(|(_, page)| page)
    }

    pub async fn monitor_series(
        &self,
        id: MonitorId,
        name: Option<&str>,
    ) -> Result<Series, ClientError> {
        let mut request = self.request(Method::GET, &format!("api/v1/monitors/{id}/series"));
        if let Some(name) = name {
            request = request.query(&[("name", name)]);
        }
        self.send(request.timeout(TIMEOUT))
            .await
            .map(|(_, series)| series)
    }
}
