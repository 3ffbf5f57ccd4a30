//! The frame of every console page: the header with the public sections and, for a signed-in
//! person, their own; the main content; the headers that keep pages safe and cacheable.
//!
//! Accessibility: a skip link to the content, one `h1` per page (the page's own), landmarks
//! (`header`, `nav`, `main`), visible focus, and a layout that reads at 320 px wide (see
//! `static/console.css`). Pages carry no inline script or style: the content security policy
//! allows only this server's style sheet.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::http::console::nav::nav;
use crate::http::console::viewer::{Viewer, csrf_field};

/// The public sections, in the header of every page: (label, path).
pub const PUBLIC_SECTIONS: &[(&str, &str)] = &[
    ("Registry", "/"),
    ("Models", "/models"),
    ("Decisions", "/decisions"),
    ("Log", "/log"),
    ("Status list", "/status"),
    ("Organizations", "/orgs"),
    ("Verify", "/verify"),
];

/// The content security policy of every page: this server's style sheet and images, no
/// script, no framing, forms only to this server.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The whole page around `body`, titled `title`.
pub fn page(viewer: Option<&Viewer>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · runpermit" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    a.brand href="/" { "runpermit" }
                    nav aria-label="Public" {
                        ul {
                            @for (label, path) in PUBLIC_SECTIONS {
                                li { a href=(path) { (label) } }
                            }
                        }
                    }
                    @match viewer {
                        Some(v) => {
                            nav aria-label="Your desk" {
                                ul {
                                    @for (label, path) in nav(&v.caller) {
                                        li { a href=(path) { (label) } }
                                    }
                                }
                            }
                            div.who {
                                span { (v.caller.member_name) " · " (v.caller.role.as_str()) ", " (v.caller.org_name) }
                                form method="post" action="/console/sign-out" {
                                    (csrf_field(v))
                                    button.link type="submit" { "Sign out" }
                                }
                            }
                        }
                        None => {
                            div.who { a href="/console/sign-in" { "Sign in" } }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// `page` as a response with the console's headers: a public page is cacheable for a few
/// seconds by anyone; a page for a signed-in person is never stored.
pub fn respond(viewer: Option<&Viewer>, title: &str, body: Markup) -> Response {
    let mut response = page(viewer, title, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if viewer.is_some() {
            "private, no-store"
        } else {
            "public, max-age=5"
        }),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
