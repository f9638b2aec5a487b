//! The client's feed-token calls, and reading a feed by its token.

use std::time::Duration;

use accord_model::{CreatedFeedToken, FeedTokenId, FeedTokenList, NewFeedToken};
use reqwest::Method;

use crate::{AccordClient, ClientError};

const TIMEOUT: Duration = Duration::from_secs(30);

impl AccordClient {
    /// Makes a feed token bound to this client's key; the token is in the
    /// answer only.
    pub async fn create_feed_token(&self, name: &str) -> Result<CreatedFeedToken, ClientError> {
        let new = NewFeedToken {
            name: name.to_owned(),
        };
        self.post("api/v1/feed-tokens", &new, TIMEOUT).await
    }

    pub async fn list_feed_tokens(&self) -> Result<FeedTokenList, ClientError> {
        self.get("api/v1/feed-tokens").await
    }

    pub async fn delete_feed_token(&self, id: FeedTokenId) -> Result<(), ClientError> {
        let response = self
            .request(Method::DELETE, &format!("api/v1/feed-tokens/{id}"))
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

    /// Reads a feed at `path` (`/feeds/{token}/...`, as the token's answer
    /// gives it): the Atom text. The token is the credential; this
    /// client's key is not sent.
    pub async fn read_feed(&self, path: &str) -> Result<String, ClientError> {
        let url = self
            .base_url()
            .join(path.trim_start_matches('/'))
            .map_err(|err| ClientError::BaseUrl(format!("feed path {path:?}: {err}")))?;
        let response = reqwest::Client::new()
            .get(url)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(ClientError::transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(ClientError::transport)?;
        if (200..300).contains(&status) {
            return String::from_utf8(bytes.to_vec()).map_err(|err| ClientError::Decode {
                status,
                reason: format!("the feed is not UTF-8: {err}"),
            });
        }
        Err(ClientError::from_body(status, &bytes))
    }
}
