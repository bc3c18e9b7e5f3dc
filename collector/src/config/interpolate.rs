//! `${VAR}` interpolation: every string value of the file can take values from the
//! environment (`$$` is a literal `$`), and `${file:PATH}` the content of a file (its last line
//! ending removed), PATH itself taking `${VAR}`s: `${file:${CREDENTIALS_DIRECTORY}/token}` reads
//! a credential systemd's `LoadCredential=` placed.
//!
//! Invariants: an unset variable or an unreadable file is an error naming it and the key; the
//! values substituted are remembered, so that an error message about the file never shows one
//! (they are often secrets).

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
        } else if let Some(f) = after.strip_prefix("{file:") {
            let end =
                closing_brace(f).ok_or_else(|| "unterminated ${file: in value".to_string())?;
            let path = substitute(&f[..end], env, used)?;
            let v = std::fs::read_to_string(&path)
                .map_err(|e| format!("${{file:{path}}}: cannot read {path}: {e}"))?;
            let v = v
                .strip_suffix("\r\n")
                .or_else(|| v.strip_suffix('\n'))
                .unwrap_or(&v)
                .to_string();
            out.push_str(&v);
            if !v.is_empty() {
                used.push(v);
            }
            rest = &f[end + 1..];
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

/// The index of the `}` closing a `${` whose content starts `s`, past any `${...}` inside.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_are_read_trimmed_and_remembered_as_secrets() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("token"), "s3cret\n").expect("write");
        let creds = dir.path().display().to_string();
        let env = move |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| creds.clone());
        let mut used = Vec::new();
        assert_eq!(
            substitute("t=${file:${CREDENTIALS_DIRECTORY}/token};", &env, &mut used),
            Ok("t=s3cret;".to_string())
        );
        assert!(used.contains(&"s3cret".to_string()), "{used:?}");
        let missing =
            substitute("${file:/nonexistent/token}", &env, &mut used).expect_err("missing");
        assert!(
            missing.contains("cannot read /nonexistent/token"),
            "{missing}"
        );
        let unset = substitute("${file:${NOPE}/token}", &env, &mut used).expect_err("unset");
        assert!(unset.contains("NOPE is not set"), "{unset}");
        assert!(substitute("${file:/x", &env, &mut used).is_err());
    }
}
