//! The public pages: what anyone may read without signing in, and only what the log already
//! makes public.

use axum::Router;

use crate::http::state::AppState;

/// The routes of the public pages.
pub fn routes() -> Router<AppState> {
    Router::new()
}
