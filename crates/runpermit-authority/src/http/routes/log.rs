//! The public transparency log, in the C2SP `tlog-tiles` layout under `/log/`, and inclusion
//! proofs under `/v1/log/proofs/`. All public: anyone may audit.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runpermit_log::{TILE_WIDTH, TilePath, entries_tile, parse_path, stored_hash_index};

use crate::domain::log as tlog;
use crate::http::error::ApiError;
use crate::http::state::AppState;

fn text(body: String, cache: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// `GET /log/checkpoint`: the published checkpoint: the latest one, or for a witnessed log
/// the latest whose cosignatures meet the witness policy's quorum, with its cosignatures.
pub(crate) async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let published = tlog::published_checkpoint(&state)
        .await?
        .ok_or_else(|| ApiError::NotFound("the log has no checkpoint yet".into()))?;
    Ok(text(published.checkpoint, "no-cache"))
}

/// `GET /log/vkey`: the verifier key of the checkpoint signatures.
pub(crate) async fn vkey(State(state): State<AppState>) -> Response {
    text(format!("{}\n", state.log.vkey), "public, max-age=86400")
}

/// `GET /log/tile/...`: hash tiles and entry bundles, derived from stored hashes and entries.
/// Full tiles never change and are cached for a year; partial ones briefly.
pub(crate) async fn tile(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let full = format!("tile/{path}");
    let not_found = || ApiError::NotFound(format!("no tile {full}"));
    let parsed = parse_path(&full).ok_or_else(not_found)?;
    let t = parsed.tile();
    let size = state.store.log_state().await?.map_or(0, |s| s.size);
    let width = i64::from(t.width());
    let start = i64::try_from(t.index()).map_err(|_| not_found())? * i64::from(TILE_WIDTH);
    let body = match parsed {
        TilePath::Entries(_) => {
            if start + width > size {
                return Err(not_found());
            }
            let entries = state.store.log_entries(start, start + width).await?;
            let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
            entries_tile(&refs)
        }
        TilePath::Hashes(_) => {
            let level = u32::from(t.level()) * 8;
            // Hashes at tree level 8·L exist for the first size >> 8·L nodes.
            let available = if level >= 63 { 0 } else { size >> level };
            if start + width > available {
                return Err(not_found());
            }
            let level = u8::try_from(level).map_err(|_| not_found())?;
            let indexes: Vec<i64> = (0..width)
                .map(|i| {
                    i64::try_from(stored_hash_index(level, (start + i) as u64)).unwrap_or(i64::MAX)
                })
                .collect();
            state.store.log_hashes(&indexes).await?.concat()
        }
    };
    let cache = if t.is_full() {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=5"
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(r)
}

/// `GET /v1/log/proofs/{index}`: a `c2sp.org/tlog-proof@v1` bundle for the entry at `index`.
pub(crate) async fn proof(
    State(state): State<AppState>,
    Path(index): Path<String>,
) -> Result<Response, ApiError> {
    let index: i64 = index
        .parse()
        .map_err(|_| ApiError::field("index", "must be a non-negative integer"))?;
    let bundle = tlog::proof_bundle(&state, index).await?;
    Ok(text(bundle.to_string(), "no-cache"))
}
