//! `POST /v1/estimate`: the compute estimator over HTTP. Body: an `EstimateInput`;
//! answer: an `Estimate`, or 422 with every invalid field.

use axum::Json;
use runpermit_compute::{Estimate, EstimateInput, HardwareTable, builtin_regimes, estimate};

use crate::http::error::{ApiError, ApiJson};

pub(crate) async fn create(
    ApiJson(input): ApiJson<EstimateInput>,
) -> Result<Json<Estimate>, ApiError> {
    let result = estimate(&input, HardwareTable::builtin(), builtin_regimes())?;
    Ok(Json(result))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    async fn router() -> axum::Router {
        crate::router(crate::testing::TestAuthority::new(None).await.state)
    }

    async fn post(body: &str) -> (StatusCode, Value) {
        let request = Request::post("/v1/estimate")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router().await.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn estimates_a_run() {
        let (status, body) = post(r#"{"parameters": 405e9, "tokens": 15.6e12}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let flop = body["flop"].as_f64().unwrap();
        assert!((flop / 3.79e25 - 1.0).abs() < 0.01, "{body}");
        assert_eq!(body["schema"], "runpermit.estimate/v1");
    }

    #[tokio::test]
    async fn invalid_fields_are_named_with_422() {
        let (status, body) = post(
            r#"{"parameters": -1, "tokens": 1e12, "hardware": {"accelerator": "H100 SMX", "count": 8, "hours": 1}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["parameters", "hardware.accelerator"], "{body}");
    }

    #[tokio::test]
    async fn unknown_fields_and_bad_json_are_422_and_400() {
        let (status, body) = post(r#"{"params": 1e9}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("params"),
            "{body}"
        );
        let (status, body) = post("{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let padding = " ".repeat(crate::MAX_BODY_BYTES + 1);
        let request = Request::post("/v1/estimate")
            .header("content-type", "application/json")
            .body(Body::from(format!("{{{padding}}}")))
            .unwrap();
        let response = router().await.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
