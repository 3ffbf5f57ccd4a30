//! The public transparency log's bodies: text in the C2SP formats, and tiles of bytes.
//! Nothing here is JSON; each type stands for a body's schema in the OpenAPI document.

use crate::foreign::{stand_in, text};

stand_in!(
    /// `GET /log/checkpoint`.
    Checkpoint => "Checkpoint",
    text("The log's latest checkpoint (C2SP tlog-checkpoint), signed as a C2SP signed note.")
);

stand_in!(
    /// `GET /log/vkey`.
    VerifierKey => "VerifierKey",
    text("The verifier key of the log's checkpoints (C2SP signed-note vkey) and a newline.")
);

stand_in!(
    /// `GET /log/tile/{path}`.
    Tile => "Tile",
    utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .content_media_type("application/octet-stream")
            .description(Some(
                "A hash tile or an entry bundle (C2SP tlog-tiles): bytes. Full tiles never \
                 change.",
            ))
            .build()
    ))
);

stand_in!(
    /// `GET /v1/log/proofs/{index}`.
    ProofBundle => "ProofBundle",
    text("A c2sp.org/tlog-proof@v1 bundle: the entry's index, inclusion proof and checkpoint.")
);
