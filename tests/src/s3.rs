//! A real S3-compatible store (s3s-fs, from crates.io: objects are files under a directory, every
//! request signed and checked) on a free port, and a client that reads every object back,
//! decompressed.

use crate::paths::tool;
use crate::procs::{command, start_on_free_port, wait_for_port, KillOnDrop};
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

/// The access key the store accepts.
pub const ACCESS_KEY: &str = "AKIDS3TEST";
/// The secret key the store accepts.
pub const SECRET_KEY: &str = "s3-test-secret";

/// s3s-fs on 127.0.0.1, its objects in a temporary directory; stopped when dropped.
pub struct S3Store {
    pub endpoint: String,
    pub port: u16,
    pub root: tempfile::TempDir,
    child: Option<KillOnDrop>,
}

fn s3s_command(port: u16, root: &std::path::Path) -> tokio::process::Child {
    command(tool("s3s-fs"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start s3s-fs")
}

/// Starts the store with the given buckets.
pub async fn spawn_s3(buckets: &[&str]) -> S3Store {
    let root = tempfile::tempdir().expect("tempdir");
    let (child, port) = start_on_free_port("s3s-fs", |port| s3s_command(port, root.path())).await;
    let store = S3Store {
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
        root,
        child: Some(KillOnDrop(child)),
    };
    let client = store.client().await;
    for b in buckets {
        client
            .client
            .create_bucket()
            .bucket(*b)
            .send()
            .await
            .expect("create bucket");
    }
    store
}

impl S3Store {
    pub async fn client(&self) -> S3Client {
        S3Client::new(&self.endpoint).await
    }

    /// Stops the store: connections are refused until [`S3Store::resume`].
    pub async fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            c.kill().await;
        }
    }

    pub async fn resume(&mut self) {
        if self.child.is_none() {
            let child = s3s_command(self.port, self.root.path());
            wait_for_port(self.port, Duration::from_secs(30), "s3s-fs").await;
            self.child = Some(KillOnDrop(child));
        }
    }

    /// The `output.s3` block of a collector configuration for `bucket` in this store, plus
    /// `extra` keys (`key: value` lines, indented by four spaces).
    pub fn output_yaml(&self, bucket: &str, extra: &str) -> String {
        output_yaml(
            &self.endpoint,
            bucket,
            &format!("{{access_key_id: {ACCESS_KEY}, secret_access_key: {SECRET_KEY}}}"),
            extra,
        )
    }
}

/// The `output.s3` block of a collector configuration (as it stands under `output:`) for
/// `bucket` at `endpoint` (path-style), with `credentials` (a flow map) and `extra` keys
/// (`key: value` lines, indented by four spaces).
pub fn output_yaml(endpoint: &str, bucket: &str, credentials: &str, extra: &str) -> String {
    format!(
        "  s3:\n    bucket: {bucket}\n    region: us-east-1\n    endpoint_url: \"{endpoint}\"\n    force_path_style: true\n\
         \x20   credentials: {credentials}\n{extra}"
    )
}

/// An object read back.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub key: String,
    pub size: i64,
    pub content_type: Option<String>,
    /// Its lines, decompressed by the key's extension.
    pub lines: Vec<String>,
}

/// A plain SDK client for tests.
pub struct S3Client {
    pub client: aws_sdk_s3::Client,
}

impl S3Client {
    pub async fn new(endpoint: &str) -> S3Client {
        let creds =
            aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(endpoint)
            .load()
            .await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build();
        S3Client {
            client: aws_sdk_s3::Client::from_conf(conf),
        }
    }

    /// Every key in the bucket, in order.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list objects");
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            token = out.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// Every object in the bucket with its lines.
    pub async fn objects(&self, bucket: &str) -> Vec<StoredObject> {
        let mut out = Vec::new();
        for key in self.keys(bucket).await {
            let got = self
                .client
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .expect("get object");
            let content_type = got.content_type().map(str::to_string);
            let bytes = got.body.collect().await.expect("body").into_bytes();
            out.push(StoredObject {
                size: bytes.len() as i64,
                lines: decompress(&key, &bytes),
                key,
                content_type,
            });
        }
        out
    }

    /// Every line in the bucket, object after object.
    pub async fn lines(&self, bucket: &str) -> Vec<String> {
        self.objects(bucket)
            .await
            .into_iter()
            .flat_map(|o| o.lines)
            .collect()
    }
}

/// An object's lines, decompressed as its key's extension says.
pub fn decompress(key: &str, bytes: &[u8]) -> Vec<String> {
    let mut text = String::new();
    if key.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{key}: not gzip: {e}"));
    } else if key.ends_with(".zst") {
        let raw = zstd::decode_all(bytes).unwrap_or_else(|e| panic!("{key}: not zstd: {e}"));
        text = String::from_utf8(raw).expect("utf8");
    } else {
        text = String::from_utf8(bytes.to_vec()).expect("utf8");
    }
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{key}: the last line has no newline"
    );
    text.lines().map(str::to_string).collect()
}
