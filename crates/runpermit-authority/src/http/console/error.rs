//! What a console page answers when it cannot do what was asked: the API's error, as a page
//! people read, with the same status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::domain::DomainError;
use crate::http::console::page;
use crate::http::error::ApiError;

/// A console request that failed.
#[derive(Debug)]
pub enum ConsoleError {
    /// What the API would have answered, shown as a page.
    Api(ApiError),
    /// The page needs a signed-in person: go to sign in, then come back to `next`.
    SignIn {
        /// The path and query to return to.
        next: String,
    },
    /// A form that may have been forged: no or another session's anti-forgery token, or sent
    /// from another site (403).
    Forgery(String),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl From<DomainError> for ConsoleError {
    fn from(e: DomainError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl From<runpermit_store::StoreError> for ConsoleError {
    fn from(e: runpermit_store::StoreError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, title, message, errors) = match self {
            ConsoleError::SignIn { next } => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &next)
                    .finish();
                return Redirect::to(&format!("/console/sign-in?{query}")).into_response();
            }
            ConsoleError::Forgery(message) => (
                StatusCode::FORBIDDEN,
                "Refused: this form may not be genuine",
                message,
                Vec::new(),
            ),
            ConsoleError::Api(e) => {
                if let ApiError::RateLimited { retry_after_s, .. } = &e {
                    retry_after = Some(*retry_after_s);
                }
                let errors = match &e {
                    ApiError::Invalid(errors) => errors.clone(),
                    _ => Vec::new(),
                };
                let (status, _, message) = e.described();
                let title = match status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::UNAUTHORIZED => "Not signed in",
                    StatusCode::CONFLICT => "Not possible now",
                    StatusCode::UNPROCESSABLE_ENTITY => "Something in the form needs attention",
                    StatusCode::TOO_MANY_REQUESTS => "Too many requests",
                    s if s.is_server_error() => "Something went wrong at the authority",
                    _ => "The request could not be read",
                };
                (status, title, message, errors)
            }
        };
        let body = html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            @if !errors.is_empty() {
                ul.errors {
                    @for e in &errors {
                        li { code { (e.field) } ": " (e.message) }
                    }
                }
            }
            p { "Go back to change what you sent, or " a href="/" { "go to the registry" } "." }
        };
        let mut response = page::respond(None, title, body);
        *response.status_mut() = status;
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
