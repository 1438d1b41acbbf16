//! Patch formats: JSON merge patch (RFC 7386, also used as an approximation of strategic
//! merge patch, whose list merging by key the twin does not do) and JSON patch (RFC 6902).

use serde_json::Value;

use super::status::ApiError;

/// Apply an RFC 7386 merge patch in place: objects merge recursively, `null` removes a
/// key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn unprocessable(msg: impl Into<String>) -> ApiError {
    ApiError::new(422, "Invalid", msg)
}

/// Split a JSON pointer into unescaped tokens.
fn pointer(p: &str) -> Result<Vec<String>, ApiError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| unprocessable(format!("invalid JSON pointer {p:?}")))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn walk<'a>(doc: &'a mut Value, toks: &[String], p: &str) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for t in toks {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| unprocessable(format!("path {p:?} does not exist")))?;
    }
    Ok(cur)
}

fn get(doc: &mut Value, p: &str) -> Result<Value, ApiError> {
    let toks = pointer(p)?;
    walk(doc, &toks, p).map(|v| v.clone())
}

fn remove(doc: &mut Value, p: &str) -> Result<Value, ApiError> {
    let toks = pointer(p)?;
    let Some((last, parent)) = toks.split_last() else {
        return Err(unprocessable("cannot remove the whole document"));
    };
    match walk(doc, parent, p)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| unprocessable(format!("path {p:?} does not exist"))),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(unprocessable(format!("path {p:?} does not exist"))),
        },
        _ => Err(unprocessable(format!("path {p:?} does not exist"))),
    }
}

fn add(doc: &mut Value, p: &str, value: Value, replace: bool) -> Result<(), ApiError> {
    let toks = pointer(p)?;
    let Some((last, parent)) = toks.split_last() else {
        *doc = value;
        return Ok(());
    };
    match walk(doc, parent, p)? {
        Value::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(unprocessable(format!("path {p:?} does not exist")));
            }
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
                return Ok(());
            }
            match last.parse::<usize>() {
                Ok(i) if replace && i < a.len() => {
                    a[i] = value;
                    Ok(())
                }
                Ok(i) if !replace && i <= a.len() => {
                    a.insert(i, value);
                    Ok(())
                }
                _ => Err(unprocessable(format!("index in {p:?} is out of range"))),
            }
        }
        _ => Err(unprocessable(format!("path {p:?} does not exist"))),
    }
}

/// Apply an RFC 6902 JSON patch (a list of operations) to a copy of `doc`.
pub fn json_patch(doc: &Value, ops: &Value) -> Result<Value, ApiError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch must be a list of operations"))?;
    let mut out = doc.clone();
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or_else(|| unprocessable("a JSON patch operation needs a path"))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| unprocessable(format!("operation on {path:?} needs a value")))
        };
        let from = || {
            op["from"]
                .as_str()
                .ok_or_else(|| unprocessable(format!("operation on {path:?} needs from")))
        };
        match op["op"].as_str() {
            Some("add") => add(&mut out, path, value()?, false)?,
            Some("replace") => add(&mut out, path, value()?, true)?,
            Some("remove") => {
                remove(&mut out, path)?;
            }
            Some("move") => {
                let v = remove(&mut out, from()?)?;
                add(&mut out, path, v, false)?;
            }
            Some("copy") => {
                let v = get(&mut out, from()?)?;
                add(&mut out, path, v, false)?;
            }
            Some("test") => {
                if get(&mut out, path)? != value()? {
                    return Err(unprocessable(format!("test of {path:?} failed")));
                }
            }
            other => {
                return Err(unprocessable(format!(
                    "unknown JSON patch operation {other:?}"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut d = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut d, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(d, json!({"a": "z", "c": {"d": "e"}}));
        merge_patch(&mut d, &json!({"list": [1, 2]}));
        assert_eq!(d["list"], json!([1, 2]));
    }

    #[test]
    fn json_patch_ops() {
        let d = json!({"a": [1, 2], "b": {"c": 1}});
        let out = json_patch(
            &d,
            &json!([
                {"op": "add", "path": "/a/-", "value": 3},
                {"op": "replace", "path": "/b/c", "value": 2},
                {"op": "copy", "from": "/b/c", "path": "/x~1y"},
                {"op": "remove", "path": "/a/0"},
                {"op": "test", "path": "/x~1y", "value": 2},
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": [2, 3], "b": {"c": 2}, "x/y": 2}));
        assert!(json_patch(&d, &json!([{"op": "replace", "path": "/zz", "value": 1}])).is_err());
        assert!(json_patch(&d, &json!({"op": "add"})).is_err());
    }
}
