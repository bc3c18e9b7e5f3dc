//! AWS STS for the assumed-role tests: moto's server with its IAM checks on, so AssumeRole checks
//! the caller's signature and IAM policy as STS does; and a front before it that answers errors
//! in STS's own form (moto nests them in `<Errors>`, as EC2 does) and can shorten the lifetime of
//! the credentials handed out, so their renewal can be watched in seconds.

use crate::procs::{command, start_on_free_port, KillOnDrop};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The role the test user may assume.
pub const WRITER_ROLE: &str = "arn:aws:iam::123456789012:role/edgelog-writer";
/// The IAM user whose key assumes the roles.
pub const USER_ARN: &str = "arn:aws:iam::123456789012:user/edgelog";
/// A role the test user's policy does not let it assume.
pub const OTHER_ROLE: &str = "arn:aws:iam::123456789012:role/someone-else";

/// Creates the IAM user `edgelog` with a key and a policy allowing sts:AssumeRole on
/// WRITER_ROLE only, and optionally the role itself with its policies, a stream and a bucket;
/// prints the key as JSON. Each call is one of moto's unchecked setup actions.
const SETUP: &str = r#"
import boto3, json, sys
url, role_arn, extra = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="AKIDSETUP", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="edgelog")
key = iam.create_access_key(UserName="edgelog")["AccessKey"]
iam.put_user_policy(UserName="edgelog", PolicyName="assume-writer", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]}))
if extra.get("trust_policy"):
    name = role_arn.split("/")[-1]
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=extra["trust_policy"])
    iam.put_role_policy(RoleName=name, PolicyName="edgelog", PolicyDocument=extra["permissions_policy"])
if extra.get("stream"):
    boto3.client("kinesis", **kw).create_stream(StreamName=extra["stream"], ShardCount=2)
if extra.get("bucket"):
    boto3.client("s3", **kw).create_bucket(Bucket=extra["bucket"])
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
"#;

/// What else moto gets before it starts checking requests.
#[derive(Debug, Default, Clone)]
pub struct Extra {
    /// The role [`WRITER_ROLE`] itself, with these policies (JSON). moto checks the actions a
    /// role's policy allows (not the resources it names), and the principal and external id of
    /// its trust policy.
    pub trust_policy: Option<String>,
    pub permissions_policy: Option<String>,
    /// A Kinesis stream (2 shards) and an S3 bucket in moto.
    pub stream: Option<String>,
    pub bucket: Option<String>,
}

impl Extra {
    /// The setup calls moto answers without checking them.
    fn calls(&self) -> usize {
        3 + 2 * usize::from(self.trust_policy.is_some())
            + usize::from(self.stream.is_some())
            + usize::from(self.bucket.is_some())
    }
}

/// moto's server, with an IAM user that may assume [`WRITER_ROLE`].
pub struct Sts {
    pub endpoint: String,
    /// The IAM user's key: the credentials that assume the role.
    pub access_key_id: String,
    pub secret_access_key: String,
    _child: KillOnDrop,
}

/// A role session STS handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub access_key_id: String,
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
}

fn moto_dir() -> std::path::PathBuf {
    crate::paths::cache_dir().join("moto")
}

/// Starts moto on a free port and creates the IAM user.
pub async fn spawn_sts() -> Sts {
    spawn_sts_with(Extra::default()).await
}

/// [`spawn_sts`], with the role, a stream or a bucket in moto too.
pub async fn spawn_sts_with(extra: Extra) -> Sts {
    let server = moto_dir().join("bin/moto_server");
    assert!(
        server.is_file(),
        "moto is not installed at {}: run scripts/setup",
        server.display()
    );
    let (child, port) = start_on_free_port("moto", |port| {
        command(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", extra.calls().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start moto")
    })
    .await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = command(moto_dir().join("bin/python"))
        .args([
            "-c",
            SETUP,
            &endpoint,
            WRITER_ROLE,
            &serde_json::json!({
                "trust_policy": extra.trust_policy,
                "permissions_policy": extra.permissions_policy,
                "stream": extra.stream,
                "bucket": extra.bucket,
            })
            .to_string(),
        ])
        .output()
        .await
        .expect("run the IAM setup");
    assert!(
        out.status.success(),
        "IAM setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).expect("setup prints a key");
    Sts {
        endpoint,
        access_key_id: key["id"].as_str().expect("id").to_string(),
        secret_access_key: key["secret"].as_str().expect("secret").to_string(),
        _child: KillOnDrop(child),
    }
}

impl Sts {
    /// Every role session STS handed out, from moto's own record.
    pub async fn sessions(&self) -> Vec<Session> {
        let body = reqwest::get(format!("{}/moto-api/data.json", self.endpoint))
            .await
            .expect("moto's data")
            .bytes()
            .await
            .expect("moto's data");
        let data: serde_json::Value = serde_json::from_slice(&body).expect("moto's data is JSON");
        data["sts"]["AssumedRole"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| Session {
                        access_key_id: r["access_key_id"].as_str().unwrap_or("").to_string(),
                        role_arn: r["role_arn"].as_str().unwrap_or("").to_string(),
                        session_name: r["session_name"].as_str().unwrap_or("").to_string(),
                        external_id: r["external_id"].as_str().map(str::to_string),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A front to moto's STS; with a `lifetime`, the credentials expire that long after they are
/// handed out.
pub struct StsFront {
    pub endpoint: String,
    /// AssumeRole calls answered.
    pub assume_calls: Arc<AtomicU64>,
    _task: crate::procs::AbortOnDrop,
}

#[derive(Clone)]
struct FrontState {
    upstream: String,
    lifetime: Option<Duration>,
    http: reqwest::Client,
    assume_calls: Arc<AtomicU64>,
}

/// Starts the front on a free port, forwarding to `upstream` (moto) with the request's own
/// `Host` header, so its signature still holds.
pub async fn spawn_sts_front(upstream: &str, lifetime: Option<Duration>) -> StsFront {
    let assume_calls = Arc::new(AtomicU64::new(0));
    let state = FrontState {
        upstream: upstream.to_string(),
        lifetime,
        http: reqwest::Client::new(),
        assume_calls: assume_calls.clone(),
    };
    let app = Router::new().route("/", post(forward)).with_state(state);
    let (addr, task) = crate::procs::serve_on_loopback(app).await;
    StsFront {
        endpoint: format!("http://{addr}"),
        assume_calls,
        _task: crate::procs::AbortOnDrop(task),
    }
}

async fn forward(State(s): State<FrontState>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = s.http.post(format!("{}/", s.upstream)).body(body);
    for (k, v) in &headers {
        if k != "content-length" {
            req = req.header(k, v);
        }
    }
    let Ok(resp) = req.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let text = resp
        .text()
        .await
        .unwrap_or_default()
        .replace("<Errors><Error>", "<Error>")
        .replace("</Error></Errors>", "</Error>");
    let (open, close) = ("<Expiration>", "</Expiration>");
    let text = match (text.find(open), text.find(close)) {
        (Some(a), Some(b)) if status.is_success() && a < b => {
            s.assume_calls.fetch_add(1, Ordering::Relaxed);
            match s.lifetime {
                Some(lifetime) => {
                    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + lifetime);
                    format!("{}{open}{expires}{}", &text[..a], &text[b..])
                }
                None => text,
            }
        }
        _ => text,
    };
    (status, [("content-type", "text/xml")], text).into_response()
}
