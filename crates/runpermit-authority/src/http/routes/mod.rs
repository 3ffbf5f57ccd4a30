//! HTTP handlers, one module per resource.

pub(crate) mod access;
pub(crate) mod applications;
pub(crate) mod estimate;
pub(crate) mod identity;
pub(crate) mod incidents;
pub(crate) mod log;
pub(crate) mod models;
pub mod ops;
pub(crate) mod permits;
pub(crate) mod reviews;
pub(crate) mod runs;
pub(crate) mod usage;
