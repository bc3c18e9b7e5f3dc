//! S3 object keys: a template of literal text and placeholders, checked once when the
//! configuration is read, rendered for every object.
//!
//! Placeholders: `{prefix}`, the UTC time of the object's first line (`{yyyy}`, `{mm}`, `{dd}`,
//! `{hh}`, `{min}`), `{id}` (which collector buffer, which positions in it) and `{ext}`.
//! Invariant: a template always holds `{id}`, so two objects never share a key unless they hold
//! the same lines.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Prefix,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Id,
    Ext,
}

/// A checked key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    source: String,
    parts: Vec<Part>,
}

/// What one key is made of.
pub struct KeyValues<'a> {
    pub prefix: &'a str,
    /// When the object's first line arrived, Unix milliseconds.
    pub time_ms: u64,
    pub id: &'a str,
    pub ext: &'a str,
}

/// S3 keys are at most 1,024 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

impl KeyTemplate {
    /// Parses `source`; the error says what is wrong and where.
    pub fn parse(source: &str) -> Result<KeyTemplate, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(open) = rest.find(['{', '}']) {
            text.push_str(&rest[..open]);
            if rest[open..].starts_with('}') {
                return Err(format!(
                    "a '}}' with no '{{' at byte {}",
                    source.len() - rest.len() + open
                ));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(format!(
                    "a '{{' with no '}}' at byte {}",
                    source.len() - rest.len() + open
                ));
            };
            let part = match &after[..close] {
                "prefix" => Part::Prefix,
                "yyyy" => Part::Year,
                "mm" => Part::Month,
                "dd" => Part::Day,
                "hh" => Part::Hour,
                "min" => Part::Minute,
                "id" => Part::Id,
                "ext" => Part::Ext,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}}; known: {{prefix}}, {{yyyy}}, {{mm}}, {{dd}}, {{hh}}, {{min}}, {{id}}, {{ext}}"
                    ))
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
            rest = &after[close + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !parts.contains(&Part::Id) {
            return Err(
                "must hold {id}, or objects from different positions or collectors would overwrite each other"
                    .into(),
            );
        }
        if matches!(parts.first(), Some(Part::Text(t)) if t.starts_with('/')) {
            return Err("must not start with '/'".into());
        }
        Ok(KeyTemplate {
            source: source.to_string(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The key for one object.
    pub fn render(&self, v: &KeyValues<'_>) -> String {
        let time = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(v.time_ms),
        )
        .to_string();
        // "YYYY-MM-DDTHH:MM:SSZ"
        let field = |a: usize, b: usize| time.get(a..b).unwrap_or("00");
        let mut out = String::with_capacity(128);
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Prefix => out.push_str(v.prefix),
                Part::Year => out.push_str(field(0, 4)),
                Part::Month => out.push_str(field(5, 7)),
                Part::Day => out.push_str(field(8, 10)),
                Part::Hour => out.push_str(field(11, 13)),
                Part::Minute => out.push_str(field(14, 16)),
                Part::Id => out.push_str(v.id),
                Part::Ext => out.push_str(v.ext),
            }
        }
        out
    }
}

impl Serialize for KeyTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_renders_hive_partitions_in_utc() {
        let t = KeyTemplate::parse(crate::config::DEFAULT_S3_KEY).expect("parse");
        // 2026-11-21T23:59:30.500Z
        let key = t.render(&KeyValues {
            prefix: "logs/",
            time_ms: 1_795_305_570_500,
            id: "abc",
            ext: ".log.gz",
        });
        assert_eq!(key, "logs/dt=2026-11-21/hour=23/abc.log.gz");
        let t = KeyTemplate::parse("{yyyy}/{mm}/{dd}/{hh}{min}-{id}").expect("parse");
        let key = t.render(&KeyValues {
            prefix: "",
            time_ms: 0,
            id: "x",
            ext: "",
        });
        assert_eq!(key, "1970/01/01/0000-x");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        for (bad, says) in [
            ("{prefix}{yyyy}", "must hold {id}"),
            ("{id}{month}", "unknown placeholder {month}"),
            ("{id", "a '{' with no '}' at byte 0"),
            ("a}{id}", "a '}' with no '{' at byte 1"),
            ("/{id}", "must not start with '/'"),
        ] {
            let err = KeyTemplate::parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
