//! The authority's HTTP API as types: every request and response body of `/v1` (and of the
//! operations and log endpoints), one module per resource, shared by the server and its
//! clients. Each type derives (or, for types other crates define, implements by hand in
//! [`foreign`]) `utoipa::ToSchema`, so the OpenAPI document the authority serves is generated
//! from the types its handlers really send and read.
//!
//! What this crate holds is the wire: field names, which fields may be absent, and their JSON
//! types. It holds no rule (validation is the authority's and the pure cores'), does no IO and
//! reads no clock. Changing a field's name or shape here is a change to every client.

pub mod access;
pub mod applications;
pub mod check;
pub mod error;
pub mod foreign;
pub mod identity;
pub mod incidents;
pub mod log;
pub mod models;
pub mod ops;
pub mod permits;
pub mod reviews;
pub mod runs;
pub mod usage;

use std::borrow::Cow;
use std::fmt;

use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
pub use utoipa::{IntoParams, PartialSchema, ToSchema};

/// The component schemas a body needs: `(name, schema)` pairs, as `utoipa` collects them.
pub type Components = Vec<(String, RefOr<Schema>)>;

/// The body of a request or a response as the OpenAPI document describes it: its media type
/// and its schema, one value or a list of values of a type of this crate. A `const` value,
/// so that the authority's endpoint table can name each route's bodies.
#[derive(Clone, Copy)]
pub struct Body {
    /// The media type (`application/json`, `text/plain`, …).
    pub content_type: &'static str,
    /// A JSON array of the type rather than one value.
    pub list: bool,
    name: fn() -> Cow<'static, str>,
    schema: fn() -> RefOr<Schema>,
    dependencies: fn(&mut Components),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("content_type", &self.content_type)
            .field("list", &self.list)
            .field("schema", &(self.name)())
            .finish()
    }
}

impl Body {
    /// One `T` in JSON.
    pub const fn json<T: ToSchema>() -> Body {
        Body::of::<T>("application/json", false)
    }

    /// A JSON array of `T`.
    pub const fn json_list<T: ToSchema>() -> Body {
        Body::of::<T>("application/json", true)
    }

    /// A body of another media type (text, a token, bytes) described by `T`'s schema.
    pub const fn media<T: ToSchema>(content_type: &'static str) -> Body {
        Body::of::<T>(content_type, false)
    }

    const fn of<T: ToSchema>(content_type: &'static str, list: bool) -> Body {
        Body {
            content_type,
            list,
            name: T::name,
            schema: T::schema,
            dependencies: T::schemas,
        }
    }

    /// The name of the body's component schema.
    pub fn name(&self) -> String {
        (self.name)().into_owned()
    }

    /// The schema a request or response names: a `$ref` to the component, or an array of them.
    pub fn schema_ref(&self) -> RefOr<Schema> {
        let one = RefOr::Ref(Ref::from_schema_name(self.name()));
        if self.list {
            ArrayBuilder::new().items(one).into()
        } else {
            one
        }
    }

    /// Adds the body's component schema and every schema it refers to, directly or not.
    pub fn components(&self, out: &mut Components) {
        out.push((self.name(), (self.schema)()));
        (self.dependencies)(out);
    }
}

/// The query parameters of a request, as the OpenAPI document describes them: a `const`
/// value naming a query type of this crate.
#[derive(Clone, Copy)]
pub struct Query {
    parameters: fn() -> Vec<Parameter>,
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = (self.parameters)().into_iter().map(|p| p.name).collect();
        f.debug_struct("Query").field("parameters", &names).finish()
    }
}

impl Query {
    /// The fields of `T`, each a query parameter.
    pub const fn of<T: IntoParams>() -> Query {
        Query {
            parameters: query_parameters::<T>,
        }
    }

    /// The parameters.
    pub fn parameters(&self) -> Vec<Parameter> {
        (self.parameters)()
    }
}

fn query_parameters<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}
