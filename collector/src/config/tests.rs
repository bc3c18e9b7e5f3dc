//! Configuration tests: defaults, every key's errors, interpolation, limits.

use super::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

const MINIMAL: &str = "fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\n";

fn load(yaml: &str) -> Result<Config, ConfigError> {
    let env: HashMap<&str, &str> = [
        ("TOKEN", "t0k3n"),
        ("AKID", "AKIAEXAMPLE"),
        ("SECRET", "s3cr3t"),
    ]
    .into_iter()
    .collect();
    Config::from_yaml(yaml, &|k| env.get(k).map(|v| v.to_string()))
}

fn err(yaml: &str) -> String {
    load(yaml).expect_err("should fail").to_string()
}

#[test]
fn defaults() {
    let c = load(MINIMAL).expect("valid");
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.ingest.path, "/logs");
    assert_eq!(c.ingest.max_body_bytes, 104_857_600);
    assert_eq!(c.ingest.max_line_bytes, 1_048_576);
    assert_eq!(c.buffer.kind, BufferKind::Disk);
    assert_eq!(c.buffer.dir, PathBuf::from("data"));
    assert_eq!(c.buffer.fsync, FsyncPolicy::Interval);
    assert_eq!(c.buffer.fsync_interval, Duration::from_millis(100));
    assert_eq!(c.buffer.fsync_bytes, DEFAULT_FSYNC_BYTES);
    assert_eq!(c.retry, RetryPolicy::default());
    assert!(matches!(c.outputs[..], [OutputConfig::Stdout]));
    assert!(c.warnings.is_empty());
}

#[test]
fn a_full_configuration_and_the_documented_kinesis_block_are_accepted() {
    let yaml = r#"
listen: "127.0.0.1:9000"
fastly:
  service_ids: ["SERVICEID1", "SERVICEID2"]
ingest:
  path: /logs
  auth:
    header: X-Edgelog-Token
    token: "${TOKEN}"
  strip_prefix: false
  max_body_bytes: 104857600
  max_line_bytes: 1048576
dead_letter:
  path: dead-letter.ndjson
output:
  aws_kinesis:
    stream_name: "logs"
    partition_key: "client_ip"
    region: "us-east-1"
    endpoint_url: "http://127.0.0.1:4567"
    credentials:
      access_key_id: "${AKID}"
      secret_access_key: "${SECRET}"
      session_token: "..."
    batch: { size: 500, duration: "1s", max_batch_bytes: 5242880 }
  retry: { max_retries: 3, initial_wait: "1s", max_wait: "30s", backoff: exponential }
"#;
    let c = load(yaml).expect("valid");
    assert_eq!(
        c.ingest.auth.as_ref().expect("auth").token.expose(),
        "t0k3n"
    );
    let OutputConfig::AwsKinesis(k) = &c.outputs[0] else {
        panic!("kinesis")
    };
    assert_eq!(k.stream_name, "logs");
    assert_eq!(
        k.partition_key,
        PartitionKeySpec::Field(vec!["client_ip".into()])
    );
    assert_eq!(k.batch.duration, Duration::from_secs(1));
    assert_eq!(
        k.credentials
            .as_ref()
            .and_then(|c| c.keys.as_ref())
            .expect("creds")
            .secret_access_key
            .expose(),
        "s3cr3t"
    );
    let printed = c.to_yaml();
    assert!(
        !printed.contains("t0k3n")
            && !printed.contains("s3cr3t")
            && !printed.contains("AKIAEXAMPLE")
    );
    assert!(printed.contains("<hidden>"));
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let e = err("fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\ningest: {pathh: /x}\n");
    assert!(e.starts_with("ingest.pathh: unknown field `pathh`"), "{e}");
    let e = err("fastly: {service_ids: [\"*\"]}\noutput: {aws_kinesis: {stream_name: s, batch: {sise: 1}}}\n");
    assert!(
        e.starts_with("output.aws_kinesis.batch.sise: unknown field `sise`"),
        "{e}"
    );
    let e = err("fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\nextra: 1\n");
    assert!(e.contains("unknown field `extra`"), "{e}");
}

#[test]
fn unset_variables_name_variable_and_key() {
    let e = err("fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\ningest: {auth: {header: X-T, token: \"${NOPE}\"}}\n");
    assert_eq!(e, "ingest.auth.token: environment variable NOPE is not set");
    let c = load("fastly: {service_ids: [\"a$$b\"]}\noutput: {stdout: {}}\n").expect("escaped $");
    assert_eq!(c.service_ids, vec!["a$b"]);
    assert!(
        err("fastly: {service_ids: [\"${bad-name}\"]}\noutput: {stdout: {}}\n")
            .contains("not a valid variable")
    );
}

#[test]
fn kinesis_limits_are_capped_with_a_warning() {
    let c = load("fastly: {service_ids: [\"*\"]}\ningest: {max_line_bytes: 2000000}\noutput: {aws_kinesis: {stream_name: s, batch: {size: 1000, max_batch_bytes: 20000000}}}\n")
            .expect("valid");
    let OutputConfig::AwsKinesis(k) = &c.outputs[0] else {
        panic!("kinesis")
    };
    assert_eq!(k.batch.size, KINESIS_MAX_RECORDS_PER_CALL);
    assert_eq!(k.batch.max_batch_bytes, KINESIS_MAX_BYTES_PER_CALL);
    assert_eq!(KINESIS_MAX_BYTES_PER_CALL, 10 * 1024 * 1024);
    // Lines are held to the largest record the output sends (1 MiB by default).
    assert_eq!(c.ingest.max_line_bytes, DEFAULT_KINESIS_MAX_RECORD_BYTES);
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    assert!(
        c.warnings[2].contains("max_record_bytes"),
        "{:?}",
        c.warnings
    );
}

fn kinesis_of(c: &Config) -> &KinesisConfig {
    match &c.outputs[0] {
        OutputConfig::AwsKinesis(k) => k,
        _ => panic!("kinesis"),
    }
}

#[test]
fn max_record_bytes_is_1_mib_by_default_and_at_most_10_mib() {
    let with = |extra: &str| {
        format!(
            "fastly: {{service_ids: [\"*\"]}}\n{extra}output: {{aws_kinesis: {{stream_name: s}}}}\n"
        )
    };
    // Default: a stream's own default maximum, and the longest line taken.
    let c = load(&with("")).expect("valid");
    assert_eq!(kinesis_of(&c).max_record_bytes, 1_048_576);
    assert_eq!(c.ingest.max_line_bytes, 1_048_576);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let set = |v: &str| {
        format!(
            "fastly: {{service_ids: [\"*\"]}}\noutput: {{aws_kinesis: {{stream_name: s, max_record_bytes: {v}}}}}\n"
        )
    };
    // The most: 10 MiB, and lines that long are taken without ingest.max_line_bytes being set.
    let c = load(&set("10485760")).expect("valid");
    assert_eq!(kinesis_of(&c).max_record_bytes, 10 * 1024 * 1024);
    assert_eq!(c.ingest.max_line_bytes, 10 * 1024 * 1024);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // A shorter ingest.max_line_bytes stays as written.
    let c = load(&format!(
        "ingest: {{max_line_bytes: 2000000}}\n{}",
        set("4194304")
    ))
    .expect("valid");
    assert_eq!(c.ingest.max_line_bytes, 2_000_000);
    assert_eq!(kinesis_of(&c).max_record_bytes, 4 * 1024 * 1024);

    // Over the most, or nothing: refused, naming the key.
    assert_eq!(
        err(&set("10485761")),
        "output.aws_kinesis.max_record_bytes: 10485761 is not 1 to 10485760 (10 MiB, the largest record Kinesis takes)"
    );
    assert!(
        err(&set("0")).starts_with("output.aws_kinesis.max_record_bytes: 0 is not 1 to"),
        "{}",
        err(&set("0"))
    );
    // Not a number: serde names the key too.
    assert!(
        err(&set("4MiB")).starts_with("output.aws_kinesis.max_record_bytes"),
        "{}",
        err(&set("4MiB"))
    );
}

#[test]
fn partition_key_strategies() {
    let pk = |v: &str| {
        let c = load(&format!(
                "fastly: {{service_ids: [\"*\"]}}\noutput: {{aws_kinesis: {{stream_name: s, partition_key: \"{v}\"}}}}\n"
            ))
            .expect("valid");
        match c.outputs.into_iter().next() {
            Some(OutputConfig::AwsKinesis(k)) => k.partition_key,
            _ => panic!("kinesis"),
        }
    };
    assert_eq!(pk("random"), PartitionKeySpec::Random);
    assert_eq!(pk("timestamp"), PartitionKeySpec::Timestamp);
    assert_eq!(pk("static:abc"), PartitionKeySpec::Static("abc".into()));
    assert_eq!(
        pk("geo.country_code"),
        PartitionKeySpec::Field(vec!["geo".into(), "country_code".into()])
    );
    assert_eq!(pk(""), PartitionKeySpec::ShardBalanced);
    assert!(err("fastly: {service_ids: [\"*\"]}\noutput: {aws_kinesis: {stream_name: s, partition_key: \"a..b\"}}\n").contains("partition_key"));
}

#[test]
fn bad_values_name_their_key() {
    let cases: Vec<(String, &str)> = vec![
        (
            "fastly: {service_ids: []}\noutput: {stdout: {}}\n".to_string(),
            "fastly.service_ids",
        ),
        ("output: {stdout: {}}\n".to_string(), "fastly"),
        (MINIMAL.replace("{stdout: {}}", "{retry: {}}"), "output"),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: b}}"),
            "output.s3.bucket",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, key: \"{yyyy}/x\"}}"),
            "output.s3.key",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, key: \"{id}{week}\"}}"),
            "output.s3.key",
        ),
        (
            MINIMAL.replace(
                "{stdout: {}}",
                "{s3: {bucket: logs, max_object_bytes: 1000}}",
            ),
            "output.s3.max_object_bytes",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, max_object_age: 0s}}"),
            "output.s3.max_object_age",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, compression: lz4}}"),
            "output.s3.compression",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, sse: aes}}"),
            "output.s3.sse",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, sse_kms_key_id: k}}"),
            "output.s3.sse_kms_key_id",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, storage_class: cold}}"),
            "output.s3.storage_class",
        ),
        (
            MINIMAL.replace(
                "{stdout: {}}",
                "{s3: {bucket: logs, endpoint_url: localhost}}",
            ),
            "output.s3.endpoint_url",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, prefix: /abs}}"),
            "output.s3.prefix",
        ),
        (
            MINIMAL.replace(
                "{stdout: {}}",
                "{s3: {bucket: logs, retry: {initial_wait: 5s, max_wait: 1s}}}",
            ),
            "output.s3.retry.max_wait",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{s3: {bucket: logs, colour: red}}"),
            "output.s3.colour",
        ),
        (format!("{MINIMAL}ingest: {{path: logs}}\n"), "ingest.path"),
        (
            format!("{MINIMAL}ingest: {{path: /metrics}}\n"),
            "ingest.path",
        ),
        (
            format!("{MINIMAL}ingest: {{request_timeout: 5 parsecs}}\n"),
            "ingest.request_timeout",
        ),
        (
            format!("{MINIMAL}ingest: {{auth: {{header: \"bad header\", token: x}}}}\n"),
            "ingest.auth.header",
        ),
        (format!("{MINIMAL}buffer: {{type: tape}}\n"), "buffer.type"),
        (
            format!("{MINIMAL}buffer: {{fsync_bytes: 0}}\n"),
            "buffer.fsync_bytes",
        ),
        (
            format!("{MINIMAL}buffer: {{fsync_interval: 0s}}\n"),
            "buffer.fsync_interval",
        ),
        (
            format!("{MINIMAL}buffer: {{ack_save_interval: 2s}}\n"),
            "buffer.ack_save_interval",
        ),
        (
            format!("{MINIMAL}buffer: {{max_bytes: 10}}\n"),
            "buffer.max_bytes",
        ),
        (
            format!("{MINIMAL}ingest: {{max_in_flight_bytes: 10}}\n"),
            "ingest.max_in_flight_bytes",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{stdout: {}, retry: {backoff: random}}"),
            "output.retry.backoff",
        ),
        (
            MINIMAL.replace(
                "{stdout: {}}",
                "{stdout: {}, retry: {initial_wait: 10s, max_wait: 1s}}",
            ),
            "output.retry.max_wait",
        ),
        (
            MINIMAL.replace(
                "{stdout: {}}",
                "{aws_kinesis: {stream_name: s, endpoint_url: \"localhost:1\"}}",
            ),
            "output.aws_kinesis.endpoint_url",
        ),
        (
            MINIMAL.replace("{stdout: {}}", "{aws_kinesis: {region: x}}"),
            "output.aws_kinesis.stream_name",
        ),
        (
            "listen: [1]\nfastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\n".to_string(),
            "listen",
        ),
    ];
    for (yaml, key) in cases {
        let e = err(&yaml);
        assert!(
            e.starts_with(&format!("{key}:")),
            "want key {key}, got: {e}"
        );
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
    assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("ms").is_err());
    assert!(parse_duration("1 fortnight").is_err());
    assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
    assert_eq!(format_duration(Duration::from_secs(30)), "30s");
    for d in [Duration::from_millis(1500), Duration::from_secs(3600)] {
        assert_eq!(parse_duration(&format_duration(d)), Ok(d), "round trip");
    }
}

#[test]
fn every_combination_of_defaults_is_valid() {
    // Each buffer type, each output, with nothing else set.
    for buffer in ["", "buffer: {type: memory}\n", "buffer: {type: disk}\n"] {
        for output in [
            "output: {stdout: {}}\n",
            "output: {file: {path: out.txt}}\n",
            "output: {aws_kinesis: {stream_name: s}}\n",
        ] {
            let yaml = format!("fastly: {{service_ids: [\"*\"]}}\n{buffer}{output}");
            let c = load(&yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert!(c.buffer.max_bytes >= c.ingest.max_body_bytes as u64);
            assert!(c.ingest.max_in_flight_bytes >= c.ingest.max_body_bytes);
            assert!(c.ingest.strip_prefix, "Fastly's default prefix is removed");
        }
    }
    // Raising the body limit alone raises what depends on it.
    let c = load("fastly: {service_ids: [\"*\"]}\nbuffer: {type: memory}\ningest: {max_body_bytes: 500000000}\noutput: {stdout: {}}\n")
        .expect("valid");
    assert_eq!(c.buffer.max_bytes, 500_000_000);
    assert_eq!(c.ingest.max_in_flight_bytes, 500_000_000);
}

#[test]
fn the_body_limit_has_a_ceiling() {
    let e = err("fastly: {service_ids: [\"*\"]}\ningest: {max_body_bytes: 5000000000}\noutput: {stdout: {}}\n");
    assert!(
        e.starts_with("ingest.max_body_bytes: 5000000000 is more than"),
        "{e}"
    );
}

#[test]
fn a_value_from_the_environment_never_appears_in_an_error() {
    // The secret lands where a mapping is expected: the type error must not echo it.
    let e = err("fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\ntail: \"${SECRET}\"\n");
    assert!(e.starts_with("tail:"), "{e}");
    assert!(!e.contains("s3cr3t"), "{e}");
    assert!(e.contains("<value from the environment>"), "{e}");
}

#[test]
fn stream_mode_and_durations_in_humantime_form() {
    let c = load("fastly: {service_ids: [\"*\"]}\noutput: {aws_kinesis: {stream_name: s, stream_mode: provisioned, batch: {duration: 1m 30s}}}\n")
        .expect("valid");
    let OutputConfig::AwsKinesis(k) = &c.outputs[0] else {
        panic!("kinesis")
    };
    assert_eq!(k.stream_mode, StreamMode::Provisioned);
    assert_eq!(k.batch.duration, Duration::from_secs(90));
    let e = err("fastly: {service_ids: [\"*\"]}\noutput: {aws_kinesis: {stream_name: s, stream_mode: fast}}\n");
    assert!(e.starts_with("output.aws_kinesis.stream_mode:"), "{e}");
}

#[test]
fn the_admin_listener_and_dead_letter_rotation() {
    let c = load(MINIMAL).expect("valid");
    assert_eq!(c.admin_listen.as_deref(), Some(DEFAULT_ADMIN_LISTEN));
    assert_eq!(c.dead_letter.max_bytes, DEFAULT_DEAD_LETTER_MAX_BYTES);
    assert_eq!(c.dead_letter.keep, DEFAULT_DEAD_LETTER_KEEP);
    let off = load(&format!("{MINIMAL}admin: {{listen: off}}\n")).expect("off");
    assert_eq!(off.admin_listen, None);
    let set = load(&format!(
        "{MINIMAL}admin: {{listen: \"[::1]:9999\"}}\ndead_letter: {{path: d.ndjson, max_bytes: 4096, keep: 0}}\n"
    ))
    .expect("set");
    assert_eq!(set.admin_listen.as_deref(), Some("[::1]:9999"));
    assert_eq!((set.dead_letter.max_bytes, set.dead_letter.keep), (4096, 0));
    for (extra, says) in [
        ("admin: {listen: localhost}", "admin.listen"),
        ("admin: {listen: \"127.0.0.1\"}", "admin.listen"),
        ("admin: {port: 1}", "port"),
        (
            "dead_letter: {path: d, max_bytes: 100}",
            "dead_letter.max_bytes",
        ),
        ("dead_letter: {path: d, keep: 1001}", "dead_letter.keep"),
        ("ingest: {path: /status}", "ingest.path"),
        ("ingest: {path: /}", "ingest.path"),
    ] {
        let e = err(&format!("{MINIMAL}{extra}\n"));
        assert!(e.contains(says), "{extra}: {e}");
    }
}
