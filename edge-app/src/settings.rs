//! Settings, from a Config Store or a builder, validated into typed values.
//!
//! Invariant: loading never fails. Every bad value is reported (key, value, reason) and its
//! default used instead, so a typo in the store degrades logging, never serving.

use crate::format::Template;

/// The endpoint used when `endpoints` is not set.
pub const DEFAULT_ENDPOINT: &str = "collector";

/// Where a line goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// The process's stdout: what `fastly log-tail` streams and Viceroy prints.
    Stdout,
    Stderr,
    /// A named log endpoint, written through log-fastly.
    Named(String),
}

impl Target {
    /// Parses an endpoint name; the error says why Fastly would refuse it.
    pub fn parse(name: &str) -> Result<Target, String> {
        let name = name.trim();
        match name {
            "stdout" => Ok(Target::Stdout),
            "stderr" => Ok(Target::Stderr),
            "" => Err("empty endpoint name".into()),
            n if n.contains(':') || n.contains('\n') => Err(format!(
                "endpoint name {n:?} may not contain ':' or a newline"
            )),
            n if n.starts_with("fst_managed_") => {
                Err(format!("endpoint name {n:?} is reserved by Fastly"))
            }
            n => Ok(Target::Named(n.to_string())),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Target::Stdout => "stdout",
            Target::Stderr => "stderr",
            Target::Named(n) => n,
        }
    }
}

/// How lines are written.
#[derive(Debug, Clone, PartialEq)]
pub enum LineFormat {
    Json,
    Template(Template),
}

impl LineFormat {
    /// `json` (or empty), `clf`, or a format string.
    pub fn parse(spec: &str) -> Result<LineFormat, crate::format::FormatError> {
        match spec.trim() {
            "" | "json" => Ok(LineFormat::Json),
            "clf" => Ok(LineFormat::Template(Template::clf())),
            _ => Template::parse(spec).map(LineFormat::Template),
        }
    }
}

/// Whether `rate` is a sample rate: a number from 0.0 to 1.0.
pub fn valid_sample_rate(rate: f64) -> bool {
    (0.0..=1.0).contains(&rate)
}

/// The app's effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub endpoints: Vec<Target>,
    pub format: LineFormat,
    /// Fraction of requests logged, 0.0 to 1.0.
    pub sample_rate: f64,
    pub anonymize_ip: bool,
    /// Query parameter names whose values are redacted.
    pub redact_query: Vec<String>,
    /// Also gets the line of every 5xx or failed request, sampled or not.
    pub error_endpoint: Option<Target>,
    /// Gets a line for every panic.
    pub panic_endpoint: Target,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            endpoints: vec![Target::Named(DEFAULT_ENDPOINT.into())],
            format: LineFormat::Json,
            sample_rate: 1.0,
            anonymize_ip: false,
            redact_query: Vec::new(),
            error_endpoint: None,
            panic_endpoint: Target::Named(DEFAULT_ENDPOINT.into()),
        }
    }
}

impl Settings {
    /// Loads settings through `get` (a Config Store lookup); returns them with the problems
    /// found, each naming the key.
    pub fn load(get: impl Fn(&str) -> Option<String>) -> (Settings, Vec<String>) {
        let mut s = Settings::default();
        let mut problems = Vec::new();

        if let Some(v) = get("endpoints") {
            let mut targets = Vec::new();
            for name in v.split(',') {
                match Target::parse(name) {
                    Ok(t) if !targets.contains(&t) => targets.push(t),
                    Ok(_) => {}
                    Err(e) => problems.push(format!("endpoints: {e}")),
                }
            }
            if targets.is_empty() {
                problems.push(format!(
                    "endpoints: no usable endpoint in {v:?}; using {DEFAULT_ENDPOINT:?}"
                ));
            } else {
                s.endpoints = targets;
            }
        }
        s.panic_endpoint = s.endpoints[0].clone();

        if let Some(v) = get("format") {
            match LineFormat::parse(&v) {
                Ok(f) => s.format = f,
                Err(e) => problems.push(format!("format: {e}; using json")),
            }
        }

        if let Some(v) = get("sample_rate") {
            match v.trim().parse::<f64>() {
                Ok(r) if valid_sample_rate(r) => s.sample_rate = r,
                _ => problems.push(format!(
                    "sample_rate: {v:?} is not a number from 0.0 to 1.0; using 1"
                )),
            }
        }

        if let Some(v) = get("anonymize_ip") {
            match parse_bool(&v) {
                Some(b) => s.anonymize_ip = b,
                None => problems.push(format!("anonymize_ip: {v:?} is not true or false")),
            }
        }

        if let Some(v) = get("redact_query") {
            s.redact_query = query_names(v.split(','));
        }

        if let Some(t) = endpoint_setting(&get, "error_endpoint", &mut problems) {
            s.error_endpoint = Some(t);
        }
        if let Some(t) = endpoint_setting(&get, "panic_endpoint", &mut problems) {
            s.panic_endpoint = t;
        }
        (s, problems)
    }
}

/// Query parameter names to redact: trimmed, empty ones left out.
pub fn query_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Vec<String> {
    names
        .into_iter()
        .map(|n| n.as_ref().trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

fn endpoint_setting(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<Target> {
    let v = get(key)?;
    if v.trim().is_empty() {
        return None;
    }
    Target::parse(&v)
        .map_err(|e| problems.push(format!("{key}: {e}")))
        .ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_when_the_store_is_empty() {
        let (s, problems) = load(&[]);
        assert!(problems.is_empty());
        assert_eq!(s, Settings::default());
        assert_eq!(s.endpoints, vec![Target::Named("collector".into())]);
    }

    #[test]
    fn every_key_is_read() {
        let (s, problems) = load(&[
            ("endpoints", " collector, stdout ,stderr,collector"),
            ("format", "clf"),
            ("sample_rate", "0.25"),
            ("anonymize_ip", "true"),
            ("redact_query", "token, email,"),
            ("error_endpoint", "errors"),
            ("panic_endpoint", "panics"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            s.endpoints,
            vec![
                Target::Named("collector".into()),
                Target::Stdout,
                Target::Stderr
            ]
        );
        assert_eq!(s.format, LineFormat::Template(Template::clf()));
        assert_eq!(s.sample_rate, 0.25);
        assert!(s.anonymize_ip);
        assert_eq!(s.redact_query, vec!["token", "email"]);
        assert_eq!(s.error_endpoint, Some(Target::Named("errors".into())));
        assert_eq!(s.panic_endpoint, Target::Named("panics".into()));
    }

    #[test]
    fn bad_values_are_reported_and_defaulted() {
        let (s, problems) = load(&[
            ("endpoints", "a:b, ,fst_managed_x"),
            ("format", "%h %Q"),
            ("sample_rate", "1.5"),
            ("anonymize_ip", "maybe"),
            ("error_endpoint", "bad\nname"),
        ]);
        assert_eq!(s.endpoints, vec![Target::Named("collector".into())]);
        assert_eq!(s.format, LineFormat::Json);
        assert_eq!(s.sample_rate, 1.0);
        assert!(!s.anonymize_ip);
        assert_eq!(s.error_endpoint, None);
        let all = problems.join("\n");
        assert!(
            all.contains("format: placeholder %Q at position 4"),
            "{all}"
        );
        assert!(all.contains("sample_rate"), "{all}");
        assert!(all.contains("anonymize_ip"), "{all}");
        assert!(all.contains("reserved"), "{all}");
        assert!(all.contains("error_endpoint"), "{all}");
        assert!(all.contains("no usable endpoint"), "{all}");
        for bad in ["nan", "-0.1", "abc"] {
            let (s, p) = load(&[("sample_rate", bad)]);
            assert_eq!(s.sample_rate, 1.0, "{bad}");
            assert_eq!(p.len(), 1, "{bad}");
        }
    }

    #[test]
    fn custom_format_strings_are_templates() {
        let (s, problems) = load(&[("format", "%h %>s")]);
        assert!(problems.is_empty());
        assert!(matches!(s.format, LineFormat::Template(_)));
    }
}
