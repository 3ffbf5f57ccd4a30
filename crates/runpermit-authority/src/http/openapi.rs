//! The OpenAPI 3.1 document, generated from the endpoint table ([`ENDPOINTS`]: paths, who may
//! call them, summaries, descriptions, and the `runpermit-api` type of every body), so that
//! what authorizes a request, what the handlers send and what the document says cannot drift.
//!
//! Every request and response body is a `$ref` to a component schema; every error answer
//! refers to the shared `Error` response (429 to `RateLimited`, with `Retry-After`); every
//! POST documents the `Idempotency-Key` header.

use runpermit_api::{Body, Components as Schemas};
use serde_json::Value;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, InfoBuilder, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, ServerBuilder,
};

use crate::http::authz::{Access, ENDPOINTS, ERROR, Endpoint};

/// The OpenAPI 3.1 document, as JSON.
pub fn openapi_document() -> Value {
    let mut schemas: Schemas = Vec::new();
    ERROR.components(&mut schemas);
    let mut paths = PathsBuilder::new();
    for e in ENDPOINTS {
        for body in [Some(e.response), e.request]
            .into_iter()
            .flatten()
            .chain(e.other_responses.iter().map(|(_, b)| *b))
        {
            body.components(&mut schemas);
        }
        let method = match e.method {
            "GET" => HttpMethod::Get,
            "PUT" => HttpMethod::Put,
            _ => HttpMethod::Post,
        };
        paths = paths.path(e.path, PathItem::new(method, operation(e)));
    }
    let mut components = Components::new();
    components.schemas.extend(schemas);
    components.responses.insert(
        "Error".into(),
        RefOr::T(error_response(
            "An error: `error` says which kind, `message` what went wrong, `errors` each \
             invalid field.",
        )),
    );
    let mut rate_limited = error_response(
        "A rate limit is reached: nothing was done. `limit` names the limit; retry after \
         `Retry-After` seconds.",
    );
    rate_limited.headers.insert(
        "Retry-After".into(),
        HeaderBuilder::new()
            .schema(integer_schema())
            .description(Some("Seconds until the request would be admitted."))
            .build(),
    );
    components
        .responses
        .insert("RateLimited".into(), RefOr::T(rate_limited));
    let mut bearer = Http::new(HttpAuthScheme::Bearer);
    bearer.description = Some("An API token (rpt_…) created with runpermit token create.".into());
    components
        .security_schemes
        .insert("bearer".into(), SecurityScheme::Http(bearer));
    let document = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("runpermit authority")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Permits, compute metering and a public log for frontier AI training runs. \
                     Errors share one body: {error, message, errors[{field, message}]}.",
                )),
        )
        .servers(Some([ServerBuilder::new().url("/").build()]))
        .security(Some([SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]))
        .paths(paths)
        .components(Some(components))
        .build();
    serde_json::to_value(document).unwrap_or(Value::Null)
}

/// The operation of `e`.
fn operation(e: &Endpoint) -> Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(e.summary))
        .description(Some(format!("{}\n\n{}", e.description, who(e.access))))
        .operation_id(Some(e.operation_id))
        .tag(e.tag)
        .parameters(Some(parameters(e)));
    if let Some(request) = e.request {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content(request.content_type, content(request.schema_ref()))
                .required(Some(Required::True))
                .build(),
        ));
    }
    let mut responses = ResponsesBuilder::new().response(
        e.success.to_string(),
        ResponseBuilder::new()
            .description(if e.success == 201 { "Created" } else { "OK" })
            .content(e.response.content_type, content(e.response.schema_ref())),
    );
    for status in error_statuses(e) {
        let own: Vec<Body> = e
            .other_responses
            .iter()
            .filter(|(s, b)| *s == status && b.name() != ERROR.name())
            .map(|(_, b)| *b)
            .collect();
        let reason = axum::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let response = match own.as_slice() {
            [] if status == 429 => RefOr::Ref(Ref::from_response_name("RateLimited")),
            [] => RefOr::Ref(Ref::from_response_name("Error")),
            [only] if !standard_error_statuses(e).contains(&status) => RefOr::T(
                ResponseBuilder::new()
                    .description(reason)
                    .content(only.content_type, content(only.schema_ref()))
                    .build(),
            ),
            own => {
                let mut one_of = OneOfBuilder::new().item(ERROR.schema_ref());
                for body in own {
                    one_of = one_of.item(body.schema_ref());
                }
                RefOr::T(
                    ResponseBuilder::new()
                        .description(format!(
                            "{reason}: the shared error, or {}",
                            own.iter().map(Body::name).collect::<Vec<_>>().join(", ")
                        ))
                        .content("application/json", content(one_of.into()))
                        .build(),
                )
            }
        };
        responses = responses.response(status.to_string(), response);
    }
    let mut op = op.responses(responses).build();
    if matches!(e.access, Access::Public) {
        op.security = Some(Vec::new());
    }
    op
}

/// Who may call an endpoint, in words.
fn who(access: Access) -> String {
    match access {
        Access::Public => "Public.".to_owned(),
        Access::AnyMember => "Any authenticated member.".to_owned(),
        Access::Only(grants) => {
            let list: Vec<String> = grants
                .iter()
                .map(|(k, r)| format!("{r} of a {k} organization"))
                .collect();
            format!("Allowed: {}.", list.join("; "))
        }
    }
}

/// The path parameters, the query parameters and, on a POST, `Idempotency-Key`.
fn parameters(e: &Endpoint) -> Vec<Parameter> {
    let mut out: Vec<Parameter> = e
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string_schema()))
                .build()
        })
        .collect();
    out.extend(e.query.map(|q| q.parameters()).unwrap_or_default());
    if e.method == "POST" {
        out.push(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1 to 200 visible ASCII characters. A request retried with the same key and \
                     body gets the first answer again (`idempotent-replay: true`) instead of \
                     acting twice; another body with the key, or a request while the first is \
                     still in progress, gets 409. Accepted and ignored on public routes.",
                ))
                .schema(Some(string_schema()))
                .build(),
        );
    }
    out
}

/// The error statuses a route like `e` answers with the shared `Error` body: a body that
/// cannot be read, no token or the wrong role, an unknown id, a conflict, invalid input, a
/// rate limit, an internal failure. Others are in `e.other_responses`.
fn standard_error_statuses(e: &Endpoint) -> Vec<u16> {
    let mut out = Vec::new();
    if e.request.is_some() {
        // Not JSON, too large, another content type.
        out.extend([400, 413, 415]);
    }
    if !matches!(e.access, Access::Public) {
        out.extend([401, 403]);
    }
    if e.path.contains('{') {
        out.push(404);
    }
    let writes = matches!(e.method, "POST" | "PUT");
    if writes {
        out.push(409);
    }
    if writes || e.query.is_some() || e.path.contains('{') {
        out.push(422);
    }
    out.extend([429, 500]);
    out
}

/// Every error status `e` documents, in order.
fn error_statuses(e: &Endpoint) -> Vec<u16> {
    let mut out = standard_error_statuses(e);
    out.extend(e.other_responses.iter().map(|(s, _)| *s));
    out.sort_unstable();
    out.dedup();
    out
}

fn content(schema: RefOr<utoipa::openapi::schema::Schema>) -> utoipa::openapi::content::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(ERROR.content_type, content(ERROR.schema_ref()))
        .build()
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
}
