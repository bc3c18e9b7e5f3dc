//! `${VAR}` interpolation: every string value of the file can take values from the
//! environment (`$$` is a literal `$`).
//!
//! Invariants: an unset variable is an error naming it and the key; the values substituted are
//! remembered, so that an error message about the file never shows one (they are often secrets).

use super::error::{invalid, ConfigError};

/// Replaces `${VAR}` in every string of the tree (`$$` is a literal `$`), naming the key and the
/// variable when one is unset.
pub fn interpolate(
    value: &mut serde_norway::Value,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
    used: &mut Vec<String>,
) -> Result<(), ConfigError> {
    use serde_norway::Value;
    match value {
        Value::String(s) if s.contains('$') => {
            *s = substitute(s, env, used).map_err(|reason| invalid(key, reason))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{key}[{i}]"), env, used)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let name = match k {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                let child = if key.is_empty() {
                    name
                } else {
                    format!("{key}.{name}")
                };
                interpolate(v, &child, env, used)?;
            }
        }
        Value::Tagged(t) => interpolate(&mut t.value, key, env, used)?,
        _ => {}
    }
    Ok(())
}

fn substitute(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
    used: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| "unterminated ${ in value".to_string())?;
            let name = &r[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("${{{name}}} is not a valid variable name"));
            }
            let v = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&v);
            if !v.is_empty() {
                used.push(v);
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces every substituted value in an error message by a placeholder.
pub fn scrub(message: &str, used: &[String]) -> String {
    let mut out = message.to_string();
    let mut values: Vec<&String> = used.iter().collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in values {
        out = out.replace(v.as_str(), "<value from the environment>");
    }
    out
}
