//! Counts written as numbers (`405e9`, `405000000000`) or as model-card text (`"405B"`,
//! `"15.6T"`), read with [`runpermit_compute::parse_count`].

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

struct CountVisitor;

const EXPECTED: &str = "a count: a number (405e9) or text with a suffix k, M, B or T (\"405B\")";

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        runpermit_compute::parse_count(v)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

pub(crate) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(CountVisitor)?
        .ok_or_else(|| de::Error::invalid_type(de::Unexpected::Unit, &EXPECTED))
}

pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(CountVisitor)
}
