//! The client's domain policy calls: `/api/v1/policies`.

use std::time::Duration;

use accord_model::{NewPolicy, PolicyId, PolicyList, PolicyPatch, PolicyView};
use reqwest::Method;

use crate::{AccordClient, ClientError};

const TIMEOUT: Duration = Duration::from_secs(30);

impl AccordClient {
    pub async fn create_policy(&self, policy: &NewPolicy) -> Result<PolicyView, ClientError> {
        self.post("api/v1/policies", policy, TIMEOUT).await
    }

    /// The workspace's policies, most specific first.
    pub async fn list_policies(&self) -> Result<PolicyList, ClientError> {
        self.get("api/v1/policies").await
    }

    pub async fn get_policy(&self, id: PolicyId) -> Result<PolicyView, ClientError> {
        self.get(&format!("api/v1/policies/{id}")).await
    }

    pub async fn update_policy(
        &self,
        id: PolicyId,
        patch: &PolicyPatch,
    ) -> Result<PolicyView, ClientError> {
        let request = self
            .request(Method::PATCH, &format!("api/v1/policies/{id}"))
            .json(patch)
            .timeout(TIMEOUT);
        self.send(request).await.map(|(_, policy)| policy)
    }

    pub async fn delete_policy(&self, id: PolicyId) -> Result<(), ClientError> {
        let response = self
            .request(Method::DELETE, &format!("api/v1/policies/{id}"))
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
}
