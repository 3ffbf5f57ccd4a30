//! `/log`: the transparency log as people read it: the latest signed checkpoint, entries
//! decoded newest first and searchable; `/log/entries/{index}`: one entry, with its
//! inclusion proof and its exact bytes.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use runpermit_log::{LogEntry, decode, leaf_hash};
use runpermit_store::LogFilter;

use crate::domain::DomainError;
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::public::entry::{fields, summary};
use crate::http::console::public::{PAGE, Params, link, pager};
use crate::http::console::session::Viewer;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// `GET /log`: filters `type`, `permit`, `run`, `org`, `application`; `before` pages back
/// (entries with a lower index).
pub async fn page(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let params = Params::parse(query.as_deref());
    let kind = params.get("type");
    if let Some(k) = &kind
        && !LogEntry::TYPES.contains(&k.as_str())
    {
        return Err(ApiError::field(
            "type",
            format!(
                "unknown entry type {k:?}; the types are {}",
                LogEntry::TYPES.join(", ")
            ),
        )
        .into());
    }
    let permit = params.id("permit")?;
    let run = params.id("run")?;
    let org = params.id("org")?;
    let application = params.id("application")?;
    let before = params.number("before", 0)?;
    let filter = LogFilter {
        types: kind.iter().cloned().collect(),
        application_id: application.clone(),
        permit_id: permit.clone(),
        run_id: run.clone(),
        org_id: org.clone(),
        before,
    };
    let state_row = state.store.log_state().await?;
    let rows = state.store.log_search(&filter, PAGE).await?;
    let now = state.clock.now_ms();
    let keep = |before: Option<i64>| {
        link(
            "/log",
            &[
                ("type", kind.clone()),
                ("permit", permit.clone()),
                ("run", run.clone()),
                ("org", org.clone()),
                ("application", application.clone()),
                ("before", before.map(|b| b.to_string())),
            ],
        )
    };
    let older = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| (keep(Some(r.idx)), "Older")))
        .flatten();
    let newer = before.map(|_| (keep(None), "Newest"));
    let filtered = kind.is_some()
        || permit.is_some()
        || run.is_some()
        || org.is_some()
        || application.is_some();
    let body = html! {
        h1 { "Transparency log" }
        p {
            "Every decision, permit and change of standing enters this append-only Merkle log \
             before it is announced. The authority signs each new tree head (checkpoint); the \
             tiles at " code { "/log/tile/…" } " let anyone recompute it. See "
            a href="/verify" { "how to verify" } "."
        }
        h2 { "Latest checkpoint" }
        @match &state_row {
            None => { p { "The log has no checkpoint yet." } }
            Some(s) => {
                dl.facts {
                    dt { "Entries" } dd { (s.size) }
                    dt { "Root hash" } dd { code { (hex::encode(&s.root)) } }
                    dt { "Signed" } dd { (format::when(s.updated_at, now)) }
                }
                p { "The signed note, as served at " a href="/log/checkpoint" { code { "/log/checkpoint" } }
                    " (verifier key at " a href="/log/vkey" { code { "/log/vkey" } } "):" }
                pre.mono { (s.checkpoint) }
            }
        }
        h2 { "Entries" }
        form.inline method="get" action="/log" role="search" {
            div {
                label for="type" { "Type" }
                select #type name="type" {
                    option value="" { "any type" }
                    @for t in LogEntry::TYPES {
                        option value=(t) selected[kind.as_deref() == Some(t)] { (t) }
                    }
                }
            }
            div { label for="permit" { "Permit id" } input #permit type="text" name="permit" value=[permit.as_deref()]; }
            div { label for="run" { "Run id" } input #run type="text" name="run" value=[run.as_deref()]; }
            div { label for="org" { "Organization id" } input #org type="text" name="org" value=[org.as_deref()]; }
            @if let Some(a) = &application { input type="hidden" name="application" value=(a); }
            div { button type="submit" { "Search" } }
        }
        @if filtered {
            p { "Showing entries "
                @if let Some(a) = &application { "about application " code { (a) } " " }
                "that match. " a href="/log" { "All entries" } }
        }
        div.table-wrap {
            table #log-entries {
                caption.muted { "Entries, newest first" }
                thead {
                    tr {
                        th scope="col" class="num" { "Index" }
                        th scope="col" { "Type" }
                        th scope="col" { "At" }
                        th scope="col" { "Organization" }
                        th scope="col" { "What it says" }
                    }
                }
                tbody {
                    @for row in &rows {
                        tr {
                            td.num { a href=(format!("/log/entries/{}", row.idx)) { (row.idx) } }
                            @match decode(&row.entry) {
                                Ok((e, at)) => {
                                    td { code { (e.type_name()) } }
                                    td { (format::when_s(at, now)) }
                                    td { @if let Some(o) = &row.org_id {
                                        a href=(link("/log", &[("org", Some(o.clone()))])) {
                                            (row.org_name.clone().unwrap_or_else(|| o.clone())) } } }
                                    td { (summary(&e, now)) }
                                }
                                Err(e) => {
                                    td colspan="4" { span.error { "does not decode: " (e.to_string()) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No entry matches." } }
        (pager(newer, older))
    };
    Ok(page::respond(viewer.as_ref(), "Transparency log", body))
}

fn index_of(text: &str) -> Result<i64, ConsoleError> {
    text.parse::<i64>().ok().filter(|i| *i >= 0).ok_or_else(|| {
        ApiError::field(
            "index",
            format!("must be a whole number of at least 0, got {text:?}"),
        )
        .into()
    })
}

/// The entry at `index` and the log's size.
async fn entry_bytes(state: &AppState, index: i64) -> Result<(Vec<u8>, i64), ConsoleError> {
    let size = state.store.log_state().await?.map_or(0, |s| s.size);
    if index >= size {
        return Err(DomainError::NotFound(format!(
            "no entry {index}: the log holds {size} entries"
        ))
        .into());
    }
    let bytes = state
        .store
        .log_entries(index, index + 1)
        .await?
        .pop()
        .ok_or_else(|| DomainError::Internal(format!("log entry {index} is missing")))?;
    Ok((bytes, size))
}

/// `GET /log/entries/{index}`.
pub async fn entry_page(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    Path(index): Path<String>,
) -> Result<Response, ConsoleError> {
    let index = index_of(&index)?;
    let (bytes, size) = entry_bytes(&state, index).await?;
    let now = state.clock.now_ms();
    let decoded = decode(&bytes);
    let title = format!("Log entry {index}");
    let body = html! {
        h1 { "Log entry " (index) }
        p {
            a #proof href=(format!("/v1/log/proofs/{index}")) { "Inclusion proof" }
            " (a " code { "c2sp.org/tlog-proof@v1" } " bundle against the latest checkpoint) · "
            a #raw href=(format!("/log/entries/{index}/raw")) { "Raw bytes" }
            " (" (bytes.len()) " bytes, exactly as hashed)"
        }
        p { "Leaf hash, SHA-256(0x00 ‖ entry): " code { (hex::encode(leaf_hash(&bytes).0)) } }
        @match &decoded {
            Ok((e, at)) => {
                p { (summary(e, now)) }
                (fields(e, *at, now))
            }
            Err(e) => { p.error role="alert" { "This entry does not decode: " (e.to_string()) } }
        }
        p {
            @if index > 0 { a rel="prev" href=(format!("/log/entries/{}", index - 1)) { "← Entry " (index - 1) } " · " }
            a href="/log" { "All entries" }
            @if index + 1 < size {
                " · " a rel="next" href=(format!("/log/entries/{}", index + 1)) { "Entry " (index + 1) " →" }
            }
        }
    };
    Ok(page::respond(viewer.as_ref(), &title, body))
}

/// `GET /log/entries/{index}/raw`: the entry's exact bytes (canonical JSON), which never
/// change.
pub async fn raw(
    State(state): State<AppState>,
    Path(index): Path<String>,
) -> Result<Response, ConsoleError> {
    let index = index_of(&index)?;
    let (bytes, _) = entry_bytes(&state, index).await?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    Ok(response)
}
