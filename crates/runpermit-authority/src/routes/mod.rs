//! HTTP handlers, one module per resource.

pub(crate) mod applications;
pub(crate) mod estimate;
pub(crate) mod identity;
pub(crate) mod log;
pub(crate) mod ops;
pub(crate) mod permits;
pub(crate) mod reviews;
