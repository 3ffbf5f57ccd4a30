//! The model registry: models a permitted run produced, registered by their developer, public
//! like permits.

use runpermit_compute::Flop;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::foreign::{FigureSchema, FlopSchema};

/// `POST /v1/models` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    /// The model's public name (`Frontier-1`), unique within the developer's organization.
    pub name: String,
    /// The permitted run that trained it (its developer's own).
    pub run_id: String,
    /// `sha256:<64 hex>` of the weights checkpoint registered; each checkpoint once.
    pub checkpoint_digest: String,
    /// The milestone report whose checkpoint this is, if any (a report of the same run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone_id: Option<String>,
    /// Cumulative training compute of the checkpoint; default: the run's metered central
    /// estimate now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FlopSchema>)]
    pub cumulative_flop: Option<Flop>,
    /// How the developer plans to release it (internal use, staged API access, open weights,
    /// …), in words.
    pub release_plan: String,
}

/// A registered model as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    /// Id (`mdl_…`).
    pub id: String,
    /// Its public name.
    pub name: String,
    /// The developer organization.
    pub org_id: String,
    /// The run that trained it.
    pub run_id: String,
    /// The run's permit.
    pub permit_id: String,
    /// The milestone report whose checkpoint it is, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone_id: Option<String>,
    /// `sha256:<hex>` of the registered checkpoint.
    pub checkpoint_digest: String,
    /// Cumulative training compute of the checkpoint.
    #[schema(value_type = FigureSchema)]
    pub cumulative_flop: f64,
    /// The release plan, in words.
    pub release_plan: String,
    /// Who registered it (member id).
    pub registered_by: String,
    /// When (RFC 3339).
    pub registered_at: String,
}
