//! Decides what one request logs and where: sampling, error routing, and serializing the line.
//!
//! Invariants: a line is serialized once and the same bytes go to every target; a request that
//! is sampled out and is not an error costs no serialization at all; every 5xx or failed request
//! reaches the error endpoint whatever the sample rate.

use crate::facts::Facts;
use crate::json_line::access_line;
use crate::settings::{LineFormat, Settings, Target};

/// One line and the targets it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Emission<'s> {
    pub line: String,
    pub targets: Vec<&'s Target>,
}

/// Whether a request with this trace id is logged at `rate`.
///
/// Deterministic in the trace id (FNV-1a), so the same request is kept or dropped everywhere it
/// is looked at, and the kept fraction converges on `rate` because trace ids are random.
pub fn sampled(trace_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in trace_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Finalize (splitmix64) so that sequential ids spread over the whole range.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    ((h >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// Applies the privacy settings to `facts` and returns the line to write, or `None` when the
/// request is not logged.
pub fn plan<'s>(facts: &mut Facts, settings: &'s Settings) -> Option<Emission<'s>> {
    let is_error = facts.status >= 500 || facts.failed();
    let mut targets: Vec<&Target> = if sampled(&facts.trace_id, settings.sample_rate) {
        settings.endpoints.iter().collect()
    } else {
        Vec::new()
    };
    if is_error {
        if let Some(t) = &settings.error_endpoint {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    }
    if targets.is_empty() {
        return None;
    }
    facts.apply_privacy(settings.anonymize_ip, &settings.redact_query);
    let line = match &settings.format {
        LineFormat::Json => access_line(facts),
        LineFormat::Template(t) => t.render(facts),
    };
    Some(Emission { line, targets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::tests::sample;
    use crate::facts::Outcome;
    use crate::format::Template;

    fn settings() -> Settings {
        Settings {
            endpoints: vec![Target::Named("collector".into()), Target::Stdout],
            error_endpoint: Some(Target::Named("errors".into())),
            ..Settings::default()
        }
    }

    #[test]
    fn sampling_is_deterministic_and_near_the_rate() {
        let ids: Vec<String> = (0..20_000u32).map(|i| format!("{i:032x}")).collect();
        for rate in [0.0, 0.1, 0.5, 0.9, 1.0] {
            let kept = ids.iter().filter(|id| sampled(id, rate)).count() as f64;
            let frac = kept / ids.len() as f64;
            assert!((frac - rate).abs() < 0.02, "rate {rate}: kept {frac}");
        }
        assert_eq!(sampled("abc", 0.5), sampled("abc", 0.5));
        assert!(!sampled("abc", f64::NAN));
    }

    #[test]
    fn a_normal_request_goes_to_every_endpoint_once() {
        let s = settings();
        let e = plan(&mut sample(), &s).expect("logged");
        assert_eq!(
            e.targets,
            vec![&Target::Named("collector".into()), &Target::Stdout]
        );
        let v: serde_json::Value = serde_json::from_str(&e.line).expect("json");
        assert_eq!(v["status"], 200);
    }

    #[test]
    fn errors_also_reach_the_error_endpoint_even_when_sampled_out() {
        let mut s = settings();
        s.sample_rate = 0.0;
        assert_eq!(plan(&mut sample(), &s), None, "sampled out, not an error");
        let mut f = sample();
        f.status = 503;
        assert_eq!(
            plan(&mut f, &s).expect("error logged").targets,
            vec![&Target::Named("errors".into())]
        );
        let mut f = sample();
        f.status = 502;
        f.outcome = Outcome::Failed("connect error".into());
        let s = settings();
        let e = plan(&mut f, &s).expect("logged");
        assert_eq!(e.targets.len(), 3);
        assert!(e.line.contains("connect error"));
    }

    #[test]
    fn privacy_and_format_settings_apply() {
        let mut s = settings();
        s.anonymize_ip = true;
        s.redact_query = vec!["token".into()];
        s.format = LineFormat::Template(Template::clf());
        let e = plan(&mut sample(), &s).expect("logged");
        assert_eq!(
            e.line,
            "203.0.113.0 - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?a=1&token=REDACTED HTTP/1.1\" 200 2326"
        );
    }
}
