//! The JSON-schema subset infra providers publish for `providerdata` (`type`, `properties`,
//! `required`, `minimum`, `maximum`, `enum`, `items`, `minLength`, `additionalProperties:
//! false`), validated the way Omni does it (omni.md §6, §9.2): the providerdata string is
//! YAML, an empty document is `{}`, and every failing leaf becomes one line
//! `- config value ".path": <message>` (Omni's `internal/pkg/jsonschema` humanizer).

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

/// Validate providerdata text against a schema text. `Err` holds Omni's message.
pub fn validate_provider_data(schema_text: &str, data: &str) -> Result<(), String> {
    let schema: Value = serde_json::from_str(schema_text)
        .map_err(|e| format!("failed to load json schema: {e}"))?;
    let file = Arc::new(PathBuf::from("providerdata"));
    let instance = match harness::yaml::parse_documents(&file, data) {
        Ok(mut docs) => match docs.len() {
            0 => Value::Object(Default::default()),
            _ => node_json(&docs.remove(0)),
        },
        Err(e) => {
            return Err(format!(
                "failed to unmarshal YAML yaml: line {}: {}",
                e.location.line,
                e.message.trim_start_matches("invalid YAML: ")
            ));
        }
    };
    let instance = if instance.is_null() {
        Value::Object(Default::default())
    } else {
        instance
    };
    let mut messages = Vec::new();
    check(&schema, &instance, &mut Vec::new(), &mut messages);
    if messages.is_empty() {
        Ok(())
    } else {
        Err(messages
            .iter()
            .map(|m| format!("- {m}"))
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// A YAML node as Go's `yaml.Unmarshal` into `any` gives it (then seen as JSON).
pub fn node_json(n: &harness::yaml::Node) -> Value {
    use harness::yaml::Value as Y;
    match &n.value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Int(i) => i64::try_from(*i)
            .map(Value::from)
            .or_else(|_| u64::try_from(*i).map(Value::from))
            .unwrap_or_else(|_| Value::from(*i as f64)),
        Y::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Y::String(s) => Value::String(s.clone()),
        Y::Seq(items) => Value::Array(items.iter().map(node_json).collect()),
        Y::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), node_json(v)))
                .collect(),
        ),
    }
}

fn field(path: &[String], message: &str) -> String {
    format!(
        "config value {:?}: {message}",
        format!(".{}", path.join("."))
    )
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    let got = type_name(v);
    want == got || (want == "number" && got == "integer")
}

fn go_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

fn check(schema: &Value, v: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        return;
    };
    if let Some(t) = s.get("type") {
        let wants: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !wants.is_empty() && !wants.iter().any(|w| type_ok(w, v)) {
            if v.is_null() {
                out.push(field(path, "is required but was not set"));
            } else {
                out.push(field(
                    path,
                    &format!(
                        "must be of type {}, but got {}",
                        wants.join(" or "),
                        type_name(v)
                    ),
                ));
            }
            return;
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => format!("'{s}'"),
                other => format!("'{other}'"),
            })
            .collect();
        out.push(field(path, &format!("must be one of {}", list.join(", "))));
    }
    if let Some(x) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && x < min
        {
            out.push(field(path, &format!("must be at least {}", go_number(min))));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && x > max
        {
            out.push(field(path, &format!("must be at most {}", go_number(max))));
        }
    }
    if let (Some(text), Some(min)) = (v.as_str(), s.get("minLength").and_then(Value::as_u64))
        && (text.chars().count() as u64) < min
    {
        out.push(field(
            path,
            &if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must have at least {min} characters")
            },
        ));
    }
    if let Value::Object(obj) = v {
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            let missing: Vec<String> = req
                .iter()
                .filter_map(Value::as_str)
                .filter(|k| !obj.contains_key(*k))
                .map(|k| {
                    let mut p = path.clone();
                    p.push(k.to_string());
                    field(&p, "is required")
                })
                .collect();
            if !missing.is_empty() {
                out.push(missing.join("; "));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        let mut keys: Vec<&String> = obj.keys().collect();
        keys.sort();
        let mut unknown = Vec::new();
        for k in keys {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => {
                    path.push(k.clone());
                    if let Some(val) = obj.get(k) {
                        check(sub, val, path, out);
                    }
                    path.pop();
                }
                None => unknown.push(k.clone()),
            }
        }
        if !unknown.is_empty() && s.get("additionalProperties") == Some(&Value::Bool(false)) {
            out.push(field(
                path,
                &format!("has unknown properties: {}", unknown.join(", ")),
            ));
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (v, s.get("items")) {
        for (i, item) in items.iter().enumerate() {
            path.push(i.to_string());
            check(item_schema, item, path, out);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str =
        include_str!("../../../fixtures/twin/omni/proxmox-providerdata-schema.json");

    #[test]
    fn the_seed_classes_pass_and_mistakes_are_named() {
        assert!(validate_provider_data(SCHEMA, "cores: 4\nsockets: 1\nmemory: 8192\ndisk_size: 40\nstorage_selector: name == \"x\"\n").is_ok());
        assert_eq!(
            validate_provider_data(
                SCHEMA,
                "cores: 4\nmemory: 16GB\ndisk_size: 40\nstorageSelector: x\n"
            )
            .unwrap_err(),
            "- config value \".storage_selector\": is required\n- config value \".memory\": must be of type integer, but got string"
        );
        assert_eq!(
            validate_provider_data(
                SCHEMA,
                "cores: 0\nmemory: 1024\ndisk_size: 40\nstorage_selector: x\ndisk_cache: fast\n"
            )
            .unwrap_err(),
            "- config value \".cores\": must be at least 1\n- config value \".disk_cache\": must be one of 'none', 'writethrough', 'writeback', 'directsync', 'unsafe'\n- config value \".memory\": must be at least 2048"
        );
        assert!(
            validate_provider_data(SCHEMA, "")
                .unwrap_err()
                .contains("\".cores\": is required; ")
        );
    }
}
