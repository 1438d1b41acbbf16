//! Lax deserialisers for values Proxmox's Perl API sends loosely (`shared/reference/proxmox.md`
//! §5): booleans as `0`/`1`/`"0"`/`"1"`/`true`/`false`/`"on"`/`"yes"`, numbers as numbers or
//! numeric strings. Used as `#[serde(default, deserialize_with = "perl::bool")]`.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// `Option<bool>` from any Perl-ish boolean; absent or null → `None`.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean, 0/1, or \"0\"/\"1\"")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v != 0))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v != 0))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v != 0.0))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "on" | "yes" => Ok(Some(true)),
                "0" | "false" | "off" | "no" | "" => Ok(Some(false)),
                other => Err(E::custom(format!("not a boolean: {other:?}"))),
            }
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}

/// `Option<u64>` from a number or numeric string (fractions truncated; negatives → 0).
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(f64(d)?.map(|f| if f <= 0.0 { 0 } else { f as u64 }))
}

/// `Option<f64>` from a number or numeric string.
pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number or a numeric string")
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(if v { 1.0 } else { 0.0 }))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let t = v.trim();
            if t.is_empty() {
                return Ok(None);
            }
            t.parse()
                .map(Some)
                .map_err(|_| E::custom(format!("not a number: {v:?}")))
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_any(V)
}

/// `Option<String>` from a string or a scalar (numbers become their text).
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "super::u64")]
        n: Option<u64>,
    }

    #[test]
    fn perl_values_parse_laxly() {
        for (json, b, n) in [
            (r#"{"b":1,"n":"4096"}"#, Some(true), Some(4096)),
            (r#"{"b":"0","n":12.9}"#, Some(false), Some(12)),
            (r#"{"b":true}"#, Some(true), None),
            (r#"{"b":"yes","n":null}"#, Some(true), None),
            (r#"{}"#, None, None),
        ] {
            let t: T = serde_json::from_str(json).unwrap();
            assert_eq!((t.b, t.n), (b, n), "{json}");
        }
        assert!(serde_json::from_str::<T>(r#"{"b":"maybe"}"#).is_err());
    }
}
