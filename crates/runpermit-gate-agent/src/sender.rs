//! Shipping usage reports to the authority over HTTP: the `send` function that
//! [`UsageQueue::ship`](crate::queue::UsageQueue::ship) calls for each report.
//!
//! `POST {authority}/v1/usage` with `{"reports": ["<compact JWS>"]}`. The authority verifies
//! the provider's signature and is idempotent on (provider, run, seq), so a report resent after
//! a lost answer is harmless. Its answer decides what the queue does:
//!
//! | answer | meaning | the queue |
//! |---|---|---|
//! | 2xx | stored (or already stored) | acknowledges the report |
//! | 400, 401, 403, 409, 413, 422 | refused for good: bad signature, unknown run, the same seq with other content | dead-letters it |
//! | anything else, or no answer | the authority or the network is unwell | retries later with backoff |

use std::time::Duration;

use runpermit_api::error::UsageRefused;
use runpermit_api::usage::UsageBatch;

use crate::queue::SendError;

/// The status codes that refuse a report for good.
const PERMANENT: [u16; 6] = [400, 401, 403, 409, 413, 422];

/// A sender posting to `{authority_url}/v1/usage`, with `timeout` per request.
pub fn http_sender(
    authority_url: &str,
    timeout: Duration,
) -> impl FnMut(&str) -> Result<(), SendError> + Send + use<> {
    let url = format!("{}/v1/usage", authority_url.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    move |token: &str| {
        let batch = UsageBatch {
            reports: vec![token.to_owned()],
        };
        let body = serde_json::to_string(&batch)
            .map_err(|e| SendError::Transient(format!("encoding the batch: {e}")))?;
        let mut response = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .map_err(|e| SendError::Transient(format!("POST {url}: {e}")))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let text = response.body_mut().read_to_string().unwrap_or_default();
        // A refused batch says, report by report, why (runpermit-api's `UsageRefused`): the
        // dead letter keeps the authority's reason for this report, not the whole body.
        let why = serde_json::from_str::<UsageRefused>(&text)
            .ok()
            .and_then(|r| r.results.into_iter().find_map(|r| r.error))
            .unwrap_or_else(|| text.trim().to_owned());
        let reason = format!("POST {url}: HTTP {status}: {why}");
        if PERMANENT.contains(&status) {
            Err(SendError::Rejected(reason))
        } else {
            Err(SendError::Transient(reason))
        }
    }
}
