//! The client's notification calls: targets, their secrets and tests, the
//! delivery log and redelivery.

use std::time::Duration;

use accord_model::{
    CreatedTarget, DeliveryPage, DeliveryView, MessageId, MonitorId, NewTarget, TargetId,
    TargetList, TargetPatch, TargetView,
};
use reqwest::Method;

use crate::{AccordClient, ClientError};

const TIMEOUT: Duration = Duration::from_secs(30);

impl AccordClient {
    /// Creates a target; a webhook's secret is in the answer only.
    pub async fn create_target(&self, target: &NewTarget) -> Result<CreatedTarget, ClientError> {
        self.post("api/v1/notification-targets", target, TIMEOUT)
            .await
    }

    pub async fn list_targets(&self) -> Result<TargetList, ClientError> {
        self.get("api/v1/notification-targets").await
    }

    pub async fn get_target(&self, id: TargetId) -> Result<TargetView, ClientError> {
        self.get(&format!("api/v1/notification-targets/{id}")).await
    }

    pub async fn update_target(
        &self,
        id: TargetId,
        patch: &TargetPatch,
    ) -> Result<TargetView, ClientError> {
        let request = self
            .request(Method::PATCH, &format!("api/v1/notification-targets/{id}"))
            .json(patch)
            .timeout(TIMEOUT);
        self.send(request).await.map(|(_, target)| target)
    }

    pub async fn delete_target(&self, id: TargetId) -> Result<(), ClientError> {
        let response = self
            .request(Method::DELETE, &format!("api/v1/notification-targets/{id}"))
            .timeout(TIMEOUT)
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

    /// A new signing secret; the old one still signs for `grace_seconds`
    /// (a day when `None`).
    pub async fn rotate_target_secret(
        &self,
        id: TargetId,
        grace_seconds: Option<u32>,
    ) -> Result<CreatedTarget, ClientError> {
        let mut path = format!("api/v1/notification-targets/{id}/rotate-secret");
        if let Some(grace) = grace_seconds {
            path.push_str(&format!("?grace_seconds={grace}"));
        }
        self.post(&path, &serde_json::json!({}), TIMEOUT).await
    }

    /// Queues a sample message to the target.
    pub async fn test_target(&self, id: TargetId) -> Result<DeliveryView, ClientError> {
        self.post(
            &format!("api/v1/notification-targets/{id}/test"),
            &serde_json::json!({}),
            TIMEOUT,
        )
        .await
    }

    pub async fn target_deliveries(
        &self,
        id: TargetId,
        limit: Option<u32>,
    ) -> Result<DeliveryPage, ClientError> {
        let mut path = format!("api/v1/notification-targets/{id}/deliveries");
        if let Some(limit) = limit {
            path.push_str(&format!("?limit={limit}"));
        }
        self.get(&path).await
    }

    pub async fn monitor_deliveries(
        &self,
        id: MonitorId,
        limit: Option<u32>,
    ) -> Result<DeliveryPage, ClientError> {
        let mut path = format!("api/v1/monitors/{id}/deliveries");
        if let Some(limit) = limit {
            path.push_str(&format!("?limit={limit}"));
        }
        self.get(&path).await
    }

    pub async fn redeliver(&self, id: MessageId) -> Result<DeliveryView, ClientError> {
        self.post(
            &format!("api/v1/deliveries/{id}/redeliver"),
            &serde_json::json!({}),
            TIMEOUT,
        )
        .await
    }
}
