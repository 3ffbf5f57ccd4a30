//! `/verify`: how to check everything these pages show without trusting them (or this
//! server): the keys, the commands, and the standard tools that work without runpermit.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use crate::http::console::error::ConsoleError;
use crate::http::console::page;
use crate::http::console::session::Viewer;
use crate::http::state::AppState;

/// `GET /verify`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
) -> Result<Response, ConsoleError> {
    let url = state.issuer.trim_end_matches('/').to_owned();
    let vkey = state.log.vkey.clone();
    let permit_cmd = format!(
        "runpermit permit verify permit.jwt --jwks {url}/.well-known/jwks.json \\\n    \
         --proof permit.proof --log-vkey \"$VKEY\""
    );
    let log_cmd =
        format!("runpermit log verify --url {url} --vkey \"$VKEY\" --state log-state.json");
    let body = html! {
        h1 { "Verify it yourself" }
        p {
            "Nothing on these pages needs to be taken on trust. The log is a Merkle tree whose \
             signed head anyone can check, permits and the status list are signed tokens, and \
             the formats are open standards (C2SP tlog-tiles, signed notes and tlog-proof; \
             JOSE with EdDSA)."
        }
        h2 { "Where the keys are" }
        dl.facts {
            dt { "Log verifier key" }
            dd { a href="/log/vkey" { code { "/log/vkey" } } ": " code { (vkey) }
                br; span.muted { "Pin it once, obtained out of band (for example from the \
                authority's publications); a key fetched from the server you are checking \
                proves nothing about that server." } }
            dt { "Permit and status-list keys" }
            dd { a href="/.well-known/jwks.json" { code { "/.well-known/jwks.json" } } " (JWKS, Ed25519)" }
            dt { "Latest checkpoint" }
            dd { a href="/log/checkpoint" { code { "/log/checkpoint" } } " (signed note: origin, size, root hash)" }
            dt { "Tiles and entries" }
            dd { code { "/log/tile/<L>/<N>" } " (hashes) and " code { "/log/tile/entries/<N>" }
                " (entry bundles), C2SP tlog-tiles layout, height 8" }
            dt { "Inclusion proofs" }
            dd { code { "/v1/log/proofs/<index>" } " (" code { "c2sp.org/tlog-proof@v1" } " bundles)" }
            dt { "Status list" }
            dd { a href="/v1/status-list" { code { "/v1/status-list" } } " (signed JWT, typ "
                code { "runpermit-status+jwt" } ")" }
            dt { "An entry's exact bytes" }
            dd { code { "/log/entries/<index>/raw" } }
        }
        h2 { "With the runpermit command" }
        p { "Fetch the verifier key once and keep it:" }
        pre.mono { "VKEY='" (vkey) "'" }
        p { "A permit with its proof (" code { "runpermit permit get APP -o permit.jwt --proof permit.proof" }
            " for its holder; anyone can take the token from its " code { "permit_issued" }
            " log entry and the proof from " code { "/v1/log/proofs/<index>" } "):" }
        pre.mono { (permit_cmd) }
        p { "The whole log: every checkpoint signature, tile, entry and tree hash, consistency \
             with what you verified last time (kept in the state file), and the status list \
             against what the entries say about each permit:" }
        pre.mono { (log_cmd) }
        h2 { "Without runpermit" }
        ul {
            li { strong { "The log, with Go" } ": " code { "golang.org/x/mod/sumdb/note" }
                " verifies the checkpoint (" code { "note.NewVerifier(vkey)" } ", "
                code { "note.Open" } "), and " code { "golang.org/x/mod/sumdb/tlog" }
                " checks tiles (" code { "tlog.TileHashReader" } ", " code { "tlog.TreeHash" }
                "), inclusion (" code { "tlog.CheckRecord" } " with " code { "tlog.RecordHash(entry)" }
                ") and consistency (" code { "tlog.CheckTree" } "). The repository's "
                code { "docs/log.md" } " gives the details and "
                code { "crates/runpermit-log/tests/go/verify.go" } " is such a verifier." }
            li { strong { "Permits and the status list, with any JOSE library" }
                ": verify the compact JWS with the JWKS above (" code { "alg" } " "
                code { "EdDSA" } ", the key chosen by " code { "kid" } "), then check "
                code { "nbf" } "/" code { "exp" } " and that the token is byte for byte the "
                code { "token" } " of a logged " code { "permit_issued" } " entry. CI checks this \
                with PyJWT; " code { "docs/permits.md" } " describes every claim." }
            li { strong { "An entry by hand" } ": its leaf hash is SHA-256 of the byte 0x00 \
                followed by its raw bytes; the entry is canonical JSON (RFC 8785), so decoding \
                and re-encoding it gives the same bytes (" code { "docs/log.md" } ")." }
        }
    };
    Ok(page::respond(viewer.as_ref(), "Verify it yourself", body))
}
