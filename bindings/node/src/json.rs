//! JS values as JSON for the core's serde types. napi-rs hands every JS number that does not
//! fit an `i32` over as a float (`68719476736.0`), which serde refuses for an integer field;
//! a JS number has no integer type, so an integral value within the exactly representable
//! range (|n| ≤ 2^53) becomes a JSON integer here.

use serde_json::{Map, Number, Value};

/// The largest integer a JS number represents exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// `value` with integral numbers as JSON integers, recursively.
pub(crate) fn integral(value: Value) -> Value {
    match value {
        Value::Number(n) => Value::Number(match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() <= MAX_SAFE => {
                if f < 0.0 {
                    Number::from(f as i64)
                } else {
                    Number::from(f as u64)
                }
            }
            _ => n,
        }),
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other,
    }
}

/// An object's own keys in camelCase (`working_dir` → `workingDir`), null members dropped (a
/// JS optional is absent, not null); nested values as they are. The core serialises its
/// `ImageConfig` with Rust's names, which `RemoteImage.config` shows as `PullResult.config`
/// does.
pub(crate) fn camel_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (camel(&k), v))
                .collect(),
        ),
        other => other,
    }
}

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        let v = integral(json!({"a": 68719476736.0, "b": [2.5, -3.0], "c": 1e300, "d": "x"}));
        assert_eq!(
            v,
            json!({"a": 68719476736u64, "b": [2.5, -3], "c": 1e300, "d": "x"})
        );
        assert!(v["a"].is_u64());
        assert!(v["b"][1].is_i64());
    }

    #[test]
    fn camel_keys_renames_own_keys_and_drops_nulls() {
        let v =
            camel_keys(json!({"working_dir": "/", "stop_signal": null, "labels": {"a_b": "c"}}));
        assert_eq!(v, json!({"workingDir": "/", "labels": {"a_b": "c"}}));
    }
}
