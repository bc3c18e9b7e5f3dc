//! The variables a `%{...}V` expression can read, by their VCL names, and their values for one
//! request.

use crate::facts::{Facts, Outcome};
use crate::timefmt::iso8601;
use std::borrow::Cow;

/// A Compute variable that `%{name}V` can log; the documented set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    ReqHeader(String),
    RespHeader(String),
    ClientIp,
    GeoCountryCode,
    GeoCity,
    GeoLatitude,
    GeoLongitude,
    GeoConnType,
    ServerDatacenter,
    ServerHostname,
    ServerIp,
    ServiceId,
    ServiceVersion,
    TraceId,
    Method,
    Url,
    UrlPath,
    UrlQs,
    Proto,
    TlsProtocol,
    ReqHeaderBytes,
    ReqBodyBytes,
    ReqBytes,
    RespStatus,
    RespBodyBytes,
    RespHeaderBytes,
    RespBytes,
    TimeStart,
    TimeStartSec,
    TimeStartMsec,
    TimeStartUsec,
    TimeEnd,
    TimeEndSec,
    TimeEndMsec,
    TimeEndUsec,
    ElapsedUsec,
    ElapsedMsec,
    ElapsedSec,
    Outcome,
    Error,
    GeoCountryName,
    GeoCountryCode3,
    GeoContinentCode,
    GeoRegion,
    GeoPostalCode,
    GeoMetroCode,
    GeoAreaCode,
    AsNumber,
    AsName,
    TlsCipher,
    TlsServername,
    ServerRegion,
    /// 1 for an IPv6 client, else 0.
    IsIpv6,
    /// 1 for HTTP/2, else 0.
    IsH2,
    /// Compute sends no HTTP/2 push: always 0.
    IsPush,
    /// 1 unless the request failed at the edge.
    RespCompleted,
    /// A cached response's age and remaining freshness, in seconds; not set when the response
    /// did not come from the cache.
    ObjAge,
    ObjTtl,
    /// A VCL variable whose fact a Compute app cannot know: always not set.
    NotOnCompute,
    /// What is known of the cache: see [`cache_state`].
    CacheState,
    /// The response's reason phrase, from its status.
    RespResponse,
    /// Times the request passed through this service before (`Fastly-FF` entries).
    VisitsThisService,
}

/// The names a `%{...}V` expression accepts besides `req.http.*` and `resp.http.*`; listed in
/// `docs/edge-library.md` (Variables).
pub const VAR_NAMES: &[(&str, Var)] = &[
    ("client.ip", Var::ClientIp),
    ("client.geo.country_code", Var::GeoCountryCode),
    ("client.geo.city", Var::GeoCity),
    ("client.geo.country_name", Var::GeoCountryName),
    ("client.geo.country_code3", Var::GeoCountryCode3),
    ("client.geo.continent_code", Var::GeoContinentCode),
    ("client.geo.region", Var::GeoRegion),
    ("client.geo.postal_code", Var::GeoPostalCode),
    ("client.geo.metro_code", Var::GeoMetroCode),
    ("client.geo.area_code", Var::GeoAreaCode),
    ("client.as.number", Var::AsNumber),
    ("client.as.name", Var::AsName),
    ("tls.client.cipher", Var::TlsCipher),
    ("tls.client.servername", Var::TlsServername),
    ("server.region", Var::ServerRegion),
    ("req.is_ipv6", Var::IsIpv6),
    ("fastly_info.is_h2", Var::IsH2),
    ("fastly_info.h2.is_push", Var::IsPush),
    ("resp.completed", Var::RespCompleted),
    ("tls.client.ciphers_sha", Var::NotOnCompute),
    ("tls.client.tlsexts_sha", Var::NotOnCompute),
    ("client.socket.congestion_algorithm", Var::NotOnCompute),
    ("client.socket.cwnd", Var::NotOnCompute),
    ("client.socket.tcpi_rcv_space", Var::NotOnCompute),
    ("client.socket.tcpi_rtt", Var::NotOnCompute),
    ("client.socket.tcpi_rttvar", Var::NotOnCompute),
    ("client.socket.tcpi_rcv_rtt", Var::NotOnCompute),
    ("client.socket.tcpi_rcv_mss", Var::NotOnCompute),
    ("client.socket.tcpi_delivery_rate", Var::NotOnCompute),
    ("client.socket.ploss", Var::NotOnCompute),
    ("client.socket.tcpi_delta_retrans", Var::NotOnCompute),
    ("client.socket.tcpi_last_data_sent", Var::NotOnCompute),
    ("client.requests", Var::NotOnCompute),
    ("fastly_info.h2.stream_id", Var::NotOnCompute),
    ("req.vcl", Var::NotOnCompute),
    ("obj.age", Var::ObjAge),
    ("obj.hits", Var::NotOnCompute),
    ("obj.ttl", Var::ObjTtl),
    ("fastly_info.state", Var::CacheState),
    ("client.geo.latitude", Var::GeoLatitude),
    ("client.geo.longitude", Var::GeoLongitude),
    ("client.geo.conn_type", Var::GeoConnType),
    ("server.datacenter", Var::ServerDatacenter),
    ("server.hostname", Var::ServerHostname),
    ("server.identity", Var::ServerHostname),
    ("server.ip", Var::ServerIp),
    ("req.service_id", Var::ServiceId),
    ("req.vcl.version", Var::ServiceVersion),
    ("req.xid", Var::TraceId),
    ("req.method", Var::Method),
    ("req.url", Var::Url),
    ("req.url.path", Var::UrlPath),
    ("req.url.qs", Var::UrlQs),
    ("req.proto", Var::Proto),
    ("tls.client.protocol", Var::TlsProtocol),
    ("req.header_bytes_read", Var::ReqHeaderBytes),
    ("req.body_bytes_read", Var::ReqBodyBytes),
    ("req.bytes_read", Var::ReqBytes),
    ("resp.status", Var::RespStatus),
    ("resp.response", Var::RespResponse),
    ("fastly.ff.visits_this_service", Var::VisitsThisService),
    ("resp.body_bytes_written", Var::RespBodyBytes),
    ("resp.header_bytes_written", Var::RespHeaderBytes),
    ("resp.bytes_written", Var::RespBytes),
    ("time.start", Var::TimeStart),
    ("time.start.sec", Var::TimeStartSec),
    ("time.start.msec", Var::TimeStartMsec),
    ("time.start.usec", Var::TimeStartUsec),
    ("time.end", Var::TimeEnd),
    ("time.end.sec", Var::TimeEndSec),
    ("time.end.msec", Var::TimeEndMsec),
    ("time.end.usec", Var::TimeEndUsec),
    ("time.elapsed.usec", Var::ElapsedUsec),
    ("time.elapsed.msec", Var::ElapsedMsec),
    ("time.elapsed.sec", Var::ElapsedSec),
    ("edgelog.outcome", Var::Outcome),
    ("edgelog.error", Var::Error),
];

/// The variable a VCL name stands for (case does not matter); `None` when it is unknown.
pub fn lookup(name: &str) -> Option<Var> {
    let lower = name.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("req.http.") {
        if h == "fastly-client-ip" {
            return Some(Var::ClientIp);
        }
        return Some(Var::ReqHeader(h.to_string()));
    }
    if let Some(h) = lower.strip_prefix("resp.http.") {
        return Some(Var::RespHeader(h.to_string()));
    }
    VAR_NAMES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, v)| v.clone())
}

/// A variable's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// Text from the request (headers, URL): escaped when written into a line.
    Text(Cow<'a, str>),
    Int(i64),
    Float(f64),
    /// Not set: a missing header, no geolocation.
    NotSet,
}

impl Var {
    /// This variable's value for the request `f`.
    pub fn value<'a>(&self, f: &'a Facts) -> Value<'a> {
        let text = |s: &'a str| Value::Text(Cow::Borrowed(s));
        let owned = |s: String| Value::Text(Cow::Owned(s));
        let maybe = |s: Option<String>| s.map_or(Value::NotSet, owned);
        let geo = f.geo.as_ref();
        let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
        match self {
            Var::ReqHeader(h) => maybe(f.request_header(h)),
            Var::RespHeader(h) => maybe(f.response_header(h)),
            Var::ClientIp => maybe(f.client_ip.map(|ip| ip.to_string())),
            Var::GeoCountryCode => geo.map_or(Value::NotSet, |g| text(&g.country_code)),
            Var::GeoCity => geo.map_or(Value::NotSet, |g| text(&g.city)),
            Var::GeoCountryName => geo.map_or(Value::NotSet, |g| text(&g.country_name)),
            Var::GeoCountryCode3 => geo.map_or(Value::NotSet, |g| text(&g.country_code3)),
            Var::GeoContinentCode => geo.map_or(Value::NotSet, |g| text(&g.continent_code)),
            Var::GeoRegion => geo
                .filter(|g| !g.region.is_empty())
                .map_or(Value::NotSet, |g| text(&g.region)),
            Var::GeoPostalCode => geo.map_or(Value::NotSet, |g| text(&g.postal_code)),
            Var::GeoMetroCode => geo.map_or(Value::NotSet, |g| Value::Int(g.metro_code)),
            Var::GeoAreaCode => geo.map_or(Value::NotSet, |g| Value::Int(i64::from(g.area_code))),
            Var::AsNumber => geo.map_or(Value::NotSet, |g| Value::Int(i64::from(g.as_number))),
            Var::AsName => geo.map_or(Value::NotSet, |g| text(&g.as_name)),
            Var::TlsCipher => f.tls_cipher.as_deref().map_or(Value::NotSet, text),
            Var::TlsServername => f.tls_servername.as_deref().map_or(Value::NotSet, text),
            Var::ServerRegion => text(&f.server_region),
            Var::IsIpv6 => Value::Int(i64::from(f.client_ip.is_some_and(|ip| ip.is_ipv6()))),
            Var::IsH2 => Value::Int(i64::from(f.protocol == "HTTP/2")),
            Var::IsPush => Value::Int(0),
            Var::RespCompleted => Value::Int(i64::from(!f.failed())),
            Var::ObjAge => f.cache_age_secs.map_or(Value::NotSet, int),
            Var::ObjTtl => f.cache_ttl_secs.map_or(Value::NotSet, int),
            Var::NotOnCompute => Value::NotSet,
            Var::CacheState => text(cache_state(f)),
            Var::GeoLatitude => Value::Float(geo.map_or(0.0, |g| g.latitude)),
            Var::GeoLongitude => Value::Float(geo.map_or(0.0, |g| g.longitude)),
            Var::GeoConnType => geo.map_or(Value::NotSet, |g| text(&g.conn_type)),
            Var::ServerDatacenter => text(&f.pop),
            Var::ServerHostname => text(&f.cache_host),
            Var::ServerIp => maybe(f.server_ip.map(|ip| ip.to_string())),
            Var::ServiceId => text(&f.service_id),
            Var::ServiceVersion => text(&f.service_version),
            Var::TraceId => text(&f.trace_id),
            Var::Method => text(&f.method),
            Var::Url => owned(f.url()),
            Var::UrlPath => text(&f.path),
            Var::UrlQs => text(f.query.as_deref().unwrap_or("")),
            Var::Proto => text(&f.protocol),
            Var::TlsProtocol => f.tls_protocol.as_deref().map_or(Value::NotSet, text),
            Var::ReqHeaderBytes => int(f.request_header_bytes),
            Var::ReqBodyBytes => int(f.request_body_bytes),
            Var::ReqBytes => int(f.request_header_bytes + f.request_body_bytes),
            Var::RespStatus => Value::Int(i64::from(f.status)),
            Var::RespBodyBytes => int(f.response_body_bytes),
            Var::RespHeaderBytes => int(f.response_header_bytes),
            Var::RespBytes => int(f.response_header_bytes + f.response_body_bytes),
            Var::TimeStart => owned(iso8601(f.start)),
            Var::TimeStartSec => Value::Int(f.start.secs()),
            Var::TimeStartMsec => Value::Int(f.start.0.div_euclid(1000)),
            Var::TimeStartUsec => Value::Int(f.start.0),
            Var::TimeEnd => owned(iso8601(f.end)),
            Var::TimeEndSec => Value::Int(f.end.secs()),
            Var::TimeEndMsec => Value::Int(f.end.0.div_euclid(1000)),
            Var::TimeEndUsec => Value::Int(f.end.0),
            Var::ElapsedUsec => int(f.elapsed_us),
            Var::ElapsedMsec => int(f.elapsed_us / 1000),
            Var::ElapsedSec => int(f.elapsed_us / 1_000_000),
            Var::Outcome => text(f.outcome.name()),
            Var::Error => match &f.outcome {
                Outcome::Failed(e) => text(e),
                _ => Value::NotSet,
            },
            Var::RespResponse => http::StatusCode::from_u16(f.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .map_or(Value::NotSet, text),
            Var::VisitsThisService => Value::Int(visits(f.request_header("fastly-ff").as_deref())),
        }
    }
}

/// `fastly_info.state`, as far as Compute can tell: `ERROR` when the request failed at the edge,
/// `HIT-SYNTH` for an answer made at the edge, `HIT` for a response from Fastly's cache, else the
/// last entry of the response's `X-Cache`
/// header (the one this node added: `HIT`, `MISS`, ...), else `PASS` (fetched from the origin
/// with no cache information).
pub fn cache_state(f: &Facts) -> &'static str {
    match f.outcome {
        Outcome::Failed(_) => "ERROR",
        Outcome::Edge => "HIT-SYNTH",
        Outcome::Cache => "HIT",
        Outcome::Origin => {
            let last = f
                .response_header("x-cache")
                .and_then(|v| v.rsplit(',').next().map(|s| s.trim().to_ascii_uppercase()));
            match last.as_deref() {
                Some(s) if s.starts_with("HIT") => "HIT",
                Some(s) if s.starts_with("MISS") => "MISS",
                _ => "PASS",
            }
        }
    }
}

/// `fastly.ff.visits_this_service`: Fastly adds one `Fastly-FF` entry per pass of a request
/// through a Fastly service (a shield in front of an edge node, a service in front of another),
/// so the count of entries is how many times it came through before reaching this one.
fn visits(fastly_ff: Option<&str>) -> i64 {
    fastly_ff.map_or(0, |v| {
        v.split(',').filter(|e| !e.trim().is_empty()).count() as i64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::tests::sample;

    #[test]
    fn names_map_to_values() {
        let f = sample();
        let v = |name: &str| lookup(name).expect(name).value(&f);
        assert_eq!(v("REQ.HTTP.User-Agent"), Value::Text("curl/8.5.0".into()));
        assert_eq!(
            v("req.http.fastly-client-ip"),
            Value::Text("203.0.113.77".into())
        );
        assert_eq!(v("req.http.x-missing"), Value::NotSet);
        assert_eq!(v("resp.status"), Value::Int(200));
        assert_eq!(v("resp.response"), Value::Text("OK".into()));
        assert_eq!(v("server.identity"), Value::Text("cache-sjc3128".into()));
        assert_eq!(v("fastly.ff.visits_this_service"), Value::Int(0));
        assert_eq!(lookup("no.such.var"), None);
        for (name, _) in VAR_NAMES {
            assert!(lookup(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_cache_state_follows_the_outcome_and_x_cache() {
        let mut f = sample();
        assert_eq!(cache_state(&f), "PASS");
        f.response_headers.push(("x-cache", b"MISS, HIT".to_vec()));
        assert_eq!(cache_state(&f), "HIT");
        f.response_headers.pop();
        f.response_headers.push(("x-cache", b"MISS".to_vec()));
        assert_eq!(cache_state(&f), "MISS");
        f.outcome = Outcome::Cache;
        assert_eq!(cache_state(&f), "HIT");
        f.outcome = Outcome::Edge;
        assert_eq!(cache_state(&f), "HIT-SYNTH");
        f.outcome = Outcome::Failed("timeout".into());
        assert_eq!(cache_state(&f), "ERROR");
    }

    #[test]
    fn facts_compute_cannot_know_are_not_set() {
        let f = sample();
        let unknowable: Vec<&str> = VAR_NAMES
            .iter()
            .filter(|(_, v)| *v == Var::NotOnCompute)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(unknowable.len(), 17);
        for name in unknowable {
            assert_eq!(lookup(name).expect(name).value(&f), Value::NotSet, "{name}");
        }
        assert_eq!(
            lookup("req.is_ipv6").expect("known").value(&f),
            Value::Int(0)
        );
        let mut v6 = sample();
        v6.client_ip = Some("2001:db8::1".parse().expect("ip"));
        v6.protocol = "HTTP/2".into();
        assert_eq!(Var::IsIpv6.value(&v6), Value::Int(1));
        assert_eq!(Var::IsH2.value(&v6), Value::Int(1));
        assert_eq!(
            Var::TlsCipher.value(&f),
            Value::Text("TLS_AES_128_GCM_SHA256".into())
        );
        assert_eq!(Var::AsNumber.value(&f), Value::Int(54113));
    }

    #[test]
    fn visits_count_fastly_ff_entries() {
        assert_eq!(visits(None), 0);
        assert_eq!(visits(Some("")), 0);
        assert_eq!(visits(Some("cache-sjc3128-SJC")), 1);
        assert_eq!(visits(Some("cache-sjc3128-SJC, cache-lax1-LAX")), 2);
    }

    #[test]
    fn a_status_without_a_reason_is_not_set() {
        let mut f = sample();
        f.status = 599;
        assert_eq!(Var::RespResponse.value(&f), Value::NotSet);
    }
}
