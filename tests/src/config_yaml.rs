//! Collector configurations for the tests, built key by key, so that a change to the
//! configuration's shape is made here once. `{dir}` in a value stands for the collector's own
//! directory ([`crate::collector::spawn_collector`] and [`ConfigYaml::write`] replace it).
//!
//! ```text
//! ConfigYaml::new()                                  fastly: any service; dead letters in {dir}
//!     .set(DISK_BUFFER)                              any top-level key, one line or a block
//!     .kinesis(&KinesisYaml::new(endpoint, "logs")   output.aws_kinesis
//!         .key("partition_key: user"))
//!     .retry(FAST_RETRY)                             output.retry
//!     .text()
//! ```

use std::path::{Path, PathBuf};

/// Credentials kinesalite and the fault-injecting front take (they check none).
pub const TEST_CREDENTIALS: &str = "{access_key_id: AKIDTEST, secret_access_key: secret}";

/// Retries that give up late and wait little: a test sees delivery recover at once.
pub const FAST_RETRY: &str = "{max_retries: 20, initial_wait: 10ms, max_wait: 100ms}";

/// Five retries, waits up to 300 ms: what the tests with a process and a disk buffer use.
pub const FEW_RETRIES: &str = "{max_retries: 5, initial_wait: 20ms, max_wait: 300ms}";

/// A disk buffer in `{dir}/buffer` that never syncs (fast; nothing here pulls the power).
pub const DISK_BUFFER: &str = "buffer: {type: disk, dir: \"{dir}/buffer\", fsync: never}";

/// The `output.aws_kinesis` block of a configuration.
#[derive(Clone, Debug)]
pub struct KinesisYaml {
    stream: String,
    endpoint: Option<String>,
    credentials: Option<String>,
    batch: String,
    /// Further keys, each a line as written under `aws_kinesis:` (indented by four).
    keys: String,
}

impl KinesisYaml {
    /// `stream` at `endpoint` in us-east-1, with [`TEST_CREDENTIALS`] and batches that close after
    /// 100 ms.
    pub fn new(endpoint: &str, stream: &str) -> KinesisYaml {
        KinesisYaml {
            stream: stream.to_string(),
            endpoint: Some(endpoint.to_string()),
            credentials: Some(TEST_CREDENTIALS.to_string()),
            batch: "{duration: 100ms}".to_string(),
            keys: String::new(),
        }
    }

    /// No `endpoint_url`: the SDK finds the endpoint itself (`AWS_ENDPOINT_URL_KINESIS`, ...).
    pub fn without_endpoint(mut self) -> Self {
        self.endpoint = None;
        self
    }

    /// `credentials` as this flow map (`{access_key_id: ..., role_arn: ...}`); `None` leaves
    /// the key out, so the SDK's chain (the environment, ...) gives them.
    pub fn credentials(mut self, flow: Option<&str>) -> Self {
        self.credentials = flow.map(str::to_string);
        self
    }

    /// `batch` as this flow map (`{size: 50, duration: 20ms}`).
    pub fn batch(mut self, flow: &str) -> Self {
        self.batch = flow.to_string();
        self
    }

    /// Another key of the block, as one line (`partition_key: user`).
    pub fn key(mut self, line: &str) -> Self {
        self.keys.push_str(&format!("    {}\n", line.trim()));
        self
    }

    /// Other keys, as lines already indented by four spaces under `aws_kinesis:`.
    pub fn keys(mut self, lines: &str) -> Self {
        self.keys.push_str(lines);
        if !self.keys.is_empty() && !self.keys.ends_with('\n') {
            self.keys.push('\n');
        }
        self
    }

    /// Batches that close after 50 ms, a health check every 200 ms and the shard map read every
    /// second: Kinesis going and coming back is seen within a second.
    pub fn watchful(self) -> Self {
        self.batch("{duration: 50ms}")
            .key("health_check_interval: 200ms")
            .key("shard_refresh: 1s")
    }

    /// The block, as it stands under `output:`.
    pub fn block(&self) -> String {
        let mut b = format!(
            "  aws_kinesis:\n    stream_name: {}\n    region: us-east-1\n",
            self.stream
        );
        if let Some(e) = &self.endpoint {
            b.push_str(&format!("    endpoint_url: \"{e}\"\n"));
        }
        if let Some(c) = &self.credentials {
            b.push_str(&format!("    credentials: {c}\n"));
        }
        b.push_str(&format!("    batch: {}\n{}", self.batch, self.keys));
        b
    }
}

/// A collector configuration.
#[derive(Clone, Debug)]
pub struct ConfigYaml {
    /// Top-level keys in order: (key, its text from the key on).
    top: Vec<(String, String)>,
    /// Outputs, each its lines under `output:`.
    outputs: Vec<String>,
    retry: Option<String>,
}

impl Default for ConfigYaml {
    fn default() -> Self {
        ConfigYaml::new()
    }
}

impl ConfigYaml {
    /// What every test starts from: the logging challenge answered for any service, and the
    /// dead-letter file in `{dir}`.
    pub fn new() -> ConfigYaml {
        ConfigYaml {
            top: Vec::new(),
            outputs: Vec::new(),
            retry: None,
        }
        .set("fastly: {service_ids: [\"*\"]}")
        .set("dead_letter: {path: \"{dir}/dead.ndjson\"}")
    }

    /// A top-level key: one line (`buffer: {type: memory}`) or a block whose first line is the
    /// key (`ingest:\n  strip_prefix: true`). Replaces the key if it is set already.
    pub fn set(mut self, text: &str) -> Self {
        let text = text.trim_end().to_string();
        let key = text.split(':').next().expect("a key").trim().to_string();
        match self.top.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = text,
            None => self.top.push((key, text)),
        }
        self
    }

    /// Top-level keys given as text (several lines, or none).
    pub fn set_all(mut self, text: &str) -> Self {
        let mut entry = String::new();
        for line in text.lines() {
            if !line.starts_with(' ') && !entry.is_empty() {
                self = self.set(&entry);
                entry.clear();
            }
            entry.push_str(line);
            entry.push('\n');
        }
        if !entry.trim().is_empty() {
            self = self.set(&entry);
        }
        self
    }

    /// For the collector in its own process: on a port it chooses (the kit reads it from its
    /// log), logging JSON.
    pub fn process(self) -> Self {
        self.set("listen: \"127.0.0.1:0\"").set("log_format: json")
    }

    /// The Kinesis output.
    pub fn kinesis(self, kinesis: &KinesisYaml) -> Self {
        self.output(&kinesis.block())
    }

    /// An output, as its lines stand under `output:` (indented by two: `  stdout: {}`).
    pub fn output(mut self, block: &str) -> Self {
        let mut block = block.to_string();
        if !block.ends_with('\n') {
            block.push('\n');
        }
        self.outputs.push(block);
        self
    }

    /// The file output, to `path` (`{dir}/out.log`).
    pub fn file_output(self, path: &str) -> Self {
        self.output(&format!("  file: {{path: \"{path}\"}}\n"))
    }

    /// `output.retry` as this flow map ([`FAST_RETRY`], [`FEW_RETRIES`]).
    pub fn retry(mut self, flow: &str) -> Self {
        self.retry = Some(flow.to_string());
        self
    }

    /// No `output.retry`: the collector's defaults.
    pub fn default_retry(mut self) -> Self {
        self.retry = None;
        self
    }

    /// The configuration's text, `{dir}` left in it.
    pub fn text(&self) -> String {
        let mut t = String::new();
        for (_, text) in &self.top {
            t.push_str(text);
            t.push('\n');
        }
        if !self.outputs.is_empty() {
            t.push_str("output:\n");
            for o in &self.outputs {
                t.push_str(o);
            }
            if let Some(r) = &self.retry {
                t.push_str(&format!("  retry: {r}\n"));
            }
        }
        t
    }

    /// The configuration's text with `{dir}` replaced by `dir`.
    pub fn text_in(&self, dir: &Path) -> String {
        self.text().replace("{dir}", &dir.display().to_string())
    }

    /// Writes the configuration, `{dir}` replaced by `dir`, to `dir/collector.yaml`; returns
    /// the file.
    pub fn write(&self, dir: &Path) -> PathBuf {
        write_config(dir, &self.text_in(dir))
    }
}

/// Writes `text` to `dir/collector.yaml` and returns the file.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("collector.yaml");
    std::fs::write(&path, text).expect("write the collector's configuration");
    path
}
