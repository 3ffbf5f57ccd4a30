//! Checks a JSON value against a schema of an OpenAPI 3.1 document: what the tests use to
//! hold the document to the bodies the server really sends, and a client may use to check
//! what it reads.
//!
//! It knows the keywords this crate's schemas use: `$ref` (to `#/components/schemas/…`),
//! `type` (one or several), `enum`, `minimum`, `properties`, `required`,
//! `additionalProperties`, `items`, `prefixItems`, `allOf`, `oneOf` and `anyOf`. It is
//! stricter than JSON Schema in one way, on purpose: an object schema that lists
//! `properties` and says nothing of `additionalProperties` refuses a field it does not list,
//! so that a field the server sends and the document does not describe is found.

use serde_json::{Map, Value};

/// Every way `value` departs from `schema` (a schema object of `document`, or a `$ref` into
/// it), each prefixed with its JSON pointer; empty when it conforms.
pub fn problems(document: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    Checker { document }.check(schema, value, "", true, &mut out);
    out
}

/// The schema a `$ref` names in `document`, if it exists.
pub fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    document.pointer(pointer)
}

struct Checker<'a> {
    document: &'a Value,
}

impl<'a> Checker<'a> {
    /// `schema` with its `$ref`s followed.
    fn resolved(&self, schema: &'a Value, out: &mut Vec<String>, at: &str) -> Option<&'a Value> {
        let mut schema = schema;
        for _ in 0..32 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => match resolve(self.document, r) {
                    Some(s) => schema = s,
                    None => {
                        out.push(format!("{at}: unresolved $ref {r}"));
                        return None;
                    }
                },
                None => return Some(schema),
            }
        }
        out.push(format!("{at}: $ref loop"));
        None
    }

    /// The property names an object schema lists, through `allOf`, `$ref`s and flattening.
    fn known_properties(&self, schema: &'a Value, names: &mut Vec<&'a str>) {
        let mut ignored = Vec::new();
        let Some(schema) = self.resolved(schema, &mut ignored, "") else {
            return;
        };
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            names.extend(props.keys().map(String::as_str));
        }
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.known_properties(part, names);
        }
    }

    fn check(
        &self,
        schema: &'a Value,
        value: &Value,
        at: &str,
        strict: bool,
        out: &mut Vec<String>,
    ) {
        let Some(schema) = self.resolved(schema, out, at) else {
            return;
        };
        if let Some(types) = schema.get("type") {
            let names: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !names.iter().any(|t| has_type(value, t)) {
                out.push(format!(
                    "{at}: expected {}, got {value}",
                    names.join(" or ")
                ));
                return;
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array)
            && !values.contains(value)
        {
            out.push(format!(
                "{at}: {value} is not one of {}",
                Value::Array(values.clone())
            ));
        }
        if let (Some(min), Some(n)) = (
            schema.get("minimum").and_then(Value::as_f64),
            value.as_f64(),
        ) && n < min
        {
            out.push(format!("{at}: {n} is below the minimum {min}"));
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            for part in parts {
                self.check(part, value, at, false, out);
            }
        }
        for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            if let Some(parts) = schema.get(keyword).and_then(Value::as_array) {
                let matching = parts
                    .iter()
                    .filter(|part| {
                        let mut inner = Vec::new();
                        self.check(part, value, at, strict, &mut inner);
                        inner.is_empty()
                    })
                    .count();
                if matching == 0 || (exactly_one && matching > 1) {
                    out.push(format!(
                        "{at}: {matching} of the {keyword} schemas match {value}"
                    ));
                }
            }
        }
        match value {
            Value::Object(map) => self.check_object(schema, map, at, strict, out),
            Value::Array(items) => self.check_array(schema, items, at, out),
            _ => {}
        }
    }

    fn check_object(
        &self,
        schema: &'a Value,
        map: &Map<String, Value>,
        at: &str,
        strict: bool,
        out: &mut Vec<String>,
    ) {
        let props = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(name) {
                out.push(format!("{at}: required field {name} is missing"));
            }
        }
        let additional = schema.get("additionalProperties");
        let mut known = Vec::new();
        if strict {
            self.known_properties(schema, &mut known);
        }
        for (key, field) in map {
            let path = format!("{at}/{key}");
            if let Some(s) = props.and_then(|p| p.get(key)) {
                self.check(s, field, &path, true, out);
                continue;
            }
            match additional {
                Some(Value::Bool(false)) => out.push(format!("{path}: unknown field")),
                Some(s @ Value::Object(_)) => self.check(s, field, &path, true, out),
                Some(_) => {}
                None if strict && !known.is_empty() && !known.contains(&key.as_str()) => {
                    out.push(format!("{path}: a field the schema does not describe"));
                }
                None => {}
            }
        }
    }

    fn check_array(&self, schema: &'a Value, items: &[Value], at: &str, out: &mut Vec<String>) {
        let prefix = schema
            .get("prefixItems")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for (i, item) in items.iter().enumerate() {
            let path = format!("{at}/{i}");
            match (prefix.get(i), schema.get("items")) {
                (Some(s), _) => self.check(s, item, &path, true, out),
                (None, Some(Value::Bool(false))) => {
                    out.push(format!("{path}: more items than the schema allows"));
                }
                (None, Some(s @ Value::Object(_))) => self.check(s, item, &path, true, out),
                (None, _) => {}
            }
        }
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_what_departs_from_a_schema() {
        let doc = json!({"components": {"schemas": {
            "Thing": {"type": "object", "required": ["a"], "properties": {
                "a": {"type": "integer", "minimum": 0},
                "b": {"type": ["string", "null"], "enum": ["x", null]}
            }},
            "Both": {"allOf": [{"$ref": "#/components/schemas/Thing"},
                {"type": "object", "properties": {"c": {"type": "boolean"}}}]}
        }}});
        let thing = json!({"$ref": "#/components/schemas/Thing"});
        assert!(problems(&doc, &thing, &json!({"a": 1, "b": null})).is_empty());
        assert_eq!(
            problems(&doc, &thing, &json!({"b": "y", "d": 1})),
            [
                ": required field a is missing",
                "/b: \"y\" is not one of [\"x\",null]",
                "/d: a field the schema does not describe"
            ]
        );
        assert_eq!(
            problems(&doc, &thing, &json!({"a": -1.5})),
            ["/a: expected integer, got -1.5"]
        );
        let both = json!({"$ref": "#/components/schemas/Both"});
        assert!(problems(&doc, &both, &json!({"a": 1, "c": true})).is_empty());
        assert_eq!(
            problems(&doc, &both, &json!({"a": 1, "e": true})),
            ["/e: a field the schema does not describe"]
        );
        assert_eq!(
            problems(
                &doc,
                &json!({"$ref": "#/components/schemas/Nothing"}),
                &json!(1)
            ),
            [": unresolved $ref #/components/schemas/Nothing"]
        );
    }
}
