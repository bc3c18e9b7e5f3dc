//! The container image, as `scripts/build-image` builds it and podman runs it: what it holds,
//! delivery to Kinesis with the configuration and environment file of docs/container.md, a
//! graceful stop, new containers resuming from the same volume while Kinesis is away, the
//! messages it stops with on bad input, the CA bundle its HTTPS clients trust, and the
//! Kubernetes objects of the docs.

use edgelog_testkit::certs::TestCa;
use edgelog_testkit::collector::{post_lines, static_collector_bin};
use edgelog_testkit::container::{
    built_image, image_entries, image_file, inspect_image, Container, OwnImage, Run, Volume,
    CONFIG_PATH, STATE_DIR,
};
use edgelog_testkit::delivery::{exactly_once, lines, post_all_with_token, stream};
use edgelog_testkit::paths::{doc_block, free_port, repo_root};
use edgelog_testkit::tls_front::spawn_tls_front;
use edgelog_testkit::{DurableKinesalite, KinesisClient};
use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DOC: &str = "docs/container.md";
/// How long a test's `podman stop` waits for the graceful shutdown before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// The configuration docs/container.md gives for the container.
fn doc_config() -> String {
    doc_block(DOC, "A configuration for the container:")
}

/// The environment file docs/container.md gives beside it, as `KEY=value` lines.
fn doc_env() -> String {
    doc_block(DOC, "and its environment file, `collector.env`")
}

fn doc_env_map() -> HashMap<String, String> {
    doc_env()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The docs' configuration with both listeners on 127.0.0.1 and a port the system picks (the
/// containers share the host's network here), and nothing else changed.
fn config_on_loopback() -> String {
    let mut text = doc_config();
    for from in ["listen: \"0.0.0.0:8080\"", "listen: \"0.0.0.0:9180\""] {
        assert_eq!(text.matches(from).count(), 1, "the docs' config has {from}");
        text = text.replace(from, "listen: \"127.0.0.1:0\"");
    }
    text
}

/// The configuration and the environment file (the docs', plus `extra` lines), written in `dir`.
fn write_config(dir: &Path, config: &str, extra_env: &str) -> (PathBuf, PathBuf) {
    let cfg = dir.join("collector.yaml");
    std::fs::write(&cfg, config).expect("write the configuration");
    let env = dir.join("collector.env");
    std::fs::write(&env, format!("{}{extra_env}", doc_env())).expect("write the environment");
    (cfg, env)
}

/// The collector's container as docs/container.md runs it: read-only root, the buffer volume
/// (`source` mounted at the state directory, `:ro` or other options after it), the
/// configuration mounted read-only, secrets from the environment file.
fn collector_run(image: &str, source: &str, cfg: &Path, env: &Path) -> Run {
    let (source, options) = source.split_once(':').unwrap_or((source, ""));
    let spec = if options.is_empty() {
        format!("{source}:{STATE_DIR}")
    } else {
        format!("{source}:{STATE_DIR}:{options}")
    };
    Run::new(image)
        .option("--read-only")
        .volume(&spec)
        .config(cfg)
        .option(&format!("--env-file={}", env.display()))
}

/// Stops a container with `podman stop`; it must exit 0 having logged that it flushed.
async fn stop_gracefully(c: Container) {
    let stderr = c.stderr.clone();
    assert_eq!(c.stop(STOP_GRACE).await, Some(0), "{:?}", stderr.snapshot());
    let log = stderr.snapshot();
    assert!(
        log.iter()
            .any(|l| l.contains("shutdown: buffer flushed to the outputs")),
        "no flush in the log: {log:#?}"
    );
}

#[tokio::test]
async fn the_image_holds_the_binary_certificates_and_a_user_and_no_shell() {
    let image = built_image().await;
    let size: u64 = inspect_image(&image.name, "{{.Size}}")
        .await
        .parse()
        .expect("size");
    eprintln!("image {} is {size} bytes", image.name);
    assert!(
        image.printed.contains(&image.name) && image.printed.contains(&size.to_string()),
        "scripts/build-image prints the name and size: {}",
        image.printed
    );
    assert!(size <= 25_000_000, "the image is {size} bytes");

    let entries = image_entries(&image.name).await;
    let paths: BTreeSet<String> = entries
        .iter()
        .filter(|e| !e.path.ends_with('/'))
        .map(|e| e.path.clone())
        .collect();
    // Root owns everything but the state directory (a new volume starts as a copy of it).
    let not_roots: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e.owner != "0/0")
        .map(|e| (e.path.as_str(), e.owner.as_str()))
        .collect();
    assert_eq!(not_roots, [("var/lib/edgelog/", "10001/10001")]);
    let expected: BTreeSet<String> = [
        "etc/group",
        "etc/passwd",
        "etc/ssl/certs/ca-certificates.crt",
        "usr/local/bin/edgelog-collector",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Podman adds empty mount points for the files it mounts at run time.
    let extra: Vec<&String> = paths
        .difference(&expected)
        .filter(|p| {
            ![
                "etc/hosts",
                "etc/resolv.conf",
                "etc/hostname",
                "run/.containerenv",
            ]
            .contains(&p.as_str())
        })
        .collect();
    assert!(extra.is_empty(), "files beyond the collector's: {extra:?}");
    assert!(expected.is_subset(&paths), "{paths:?}");

    let config = |f: &'static str| {
        let name = image.name.clone();
        async move { inspect_image(&name, f).await }
    };
    assert_eq!(config("{{.Config.User}}").await, "10001:10001");
    assert_eq!(
        config("{{json .Config.Entrypoint}}").await,
        "[\"/usr/local/bin/edgelog-collector\"]"
    );
    assert_eq!(
        config("{{json .Config.Cmd}}").await,
        format!("[\"serve\",\"--config\",\"{CONFIG_PATH}\"]")
    );
    assert_eq!(config("{{.Config.StopSignal}}").await, "SIGTERM");
    assert_eq!(config("{{.Config.WorkingDir}}").await, STATE_DIR);
    let volumes: serde_json::Value =
        serde_json::from_str(&config("{{json .Config.Volumes}}").await).expect("volumes");
    assert_eq!(
        volumes
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec![STATE_DIR.to_string()])
    );
    let ports: serde_json::Value =
        serde_json::from_str(&config("{{json .Config.ExposedPorts}}").await).expect("ports");
    let ports: BTreeSet<String> = ports.as_object().expect("ports").keys().cloned().collect();
    assert_eq!(
        ports,
        BTreeSet::from(["8080/tcp".to_string(), "9180/tcp".to_string()])
    );

    let labels: HashMap<String, String> =
        serde_json::from_str(&config("{{json .Config.Labels}}").await).expect("labels");
    let label = |k: &str| {
        labels
            .get(&format!("org.opencontainers.image.{k}"))
            .cloned()
            .unwrap_or_else(|| panic!("no {k} label: {labels:?}"))
    };
    assert_eq!(label("title"), "edgelog-collector");
    assert!(label("description").contains("Kinesis"));
    assert_eq!(label("licenses"), "MIT");
    let manifest =
        std::fs::read_to_string(repo_root().join("collector/Cargo.toml")).expect("manifest");
    assert!(
        manifest.contains(&format!("\nversion = \"{}\"\n", label("version"))),
        "version label {}",
        label("version")
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo_root())
        .output()
        .expect("git");
    assert_eq!(
        label("revision"),
        String::from_utf8_lossy(&head.stdout).trim()
    );
    let committed = std::process::Command::new("git")
        .args([
            "log",
            "-1",
            "--format=%cd",
            "--date=format-local:%Y-%m-%dT%H:%M:%SZ",
        ])
        .env("TZ", "UTC")
        .current_dir(repo_root())
        .output()
        .expect("git");
    assert_eq!(
        label("created"),
        String::from_utf8_lossy(&committed.stdout).trim()
    );

    // The user the image runs as, in its passwd.
    let passwd = String::from_utf8(image_file(&image.name, "/etc/passwd").await).expect("utf-8");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("edgelog:x:10001:10001:")),
        "{passwd}"
    );

    // The CA bundle is the build host's, and holds the roots AWS endpoints chain to.
    let bundle = image_file(&image.name, "/etc/ssl/certs/ca-certificates.crt").await;
    let host = std::fs::read("/etc/ssl/certs/ca-certificates.crt").expect("the host's bundle");
    assert_eq!(
        bundle, host,
        "the image's CA bundle is not the build host's"
    );
    let bundle = String::from_utf8(bundle).expect("PEM");
    let certificates = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certificates > 100, "{certificates} certificates");
    for root in [
        "Amazon_Root_CA_1",
        "Starfield_Services_Root_Certificate_Authority_-_G2",
    ] {
        let pem = std::fs::read_to_string(format!("/usr/share/ca-certificates/mozilla/{root}.crt"))
            .unwrap_or_else(|e| panic!("{root}: {e} (apt-get install -y ca-certificates)"));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let flat: String = bundle.lines().collect();
        assert!(flat.contains(&body), "{root} is not in the image's bundle");
    }
}

#[tokio::test]
async fn containers_deliver_stop_gracefully_and_resume_from_the_volume_while_kinesis_is_away() {
    let image = built_image().await;
    let mut kinesis = DurableKinesalite::start().await;
    let kc = KinesisClient::new(&kinesis.endpoint).await;
    let env = doc_env_map();
    kc.create_stream(&env["EDGELOG_STREAM"], 2).await;
    let token = env["EDGELOG_INGEST_TOKEN"].as_str();
    let stream_name = env["EDGELOG_STREAM"].as_str();
    let dir = tempfile::tempdir().expect("tmp");
    let (cfg, env_file) = write_config(
        dir.path(),
        &config_on_loopback(),
        &format!("AWS_ENDPOINT_URL_KINESIS={}\n", kinesis.endpoint),
    );
    let volume = Volume::create().await;
    let run = || collector_run(&image.name, &volume.name, &cfg, &env_file);

    // First container: lines posted with the token from the environment file, then stopped at
    // once: the graceful shutdown delivers them (batches are 5 s by default).
    let a = run().start(false).await;
    let first = lines("a", 200);
    post_all_with_token(&a.url, Some(token), &first, 50).await;
    assert_eq!(post_lines(&a.url, None, &first[..1]).await, 401);
    let status = a
        .exec(&["edgelog-collector", "status", "--url", &a.admin_url])
        .await;
    assert_eq!(
        status.code,
        Some(0),
        "podman exec status: {}",
        status.stderr
    );
    assert!(status.stdout.contains("aws_kinesis"), "{}", status.stdout);
    stop_gracefully(a).await;
    exactly_once(&kc.read_all(stream_name).await, &first);
    // The collector ran as the image's user: what it made on the volume is theirs.
    let buffer = volume.host_path().await.join("buffer");
    let owner = std::fs::metadata(&buffer).expect("the buffer on the volume");
    assert_eq!((owner.uid(), owner.gid()), (10001, 10001));

    // Kinesis goes away. A new container on the same volume takes lines into its buffer (ready)
    // and says it is not delivering; it is killed (nothing flushed or saved).
    kinesis.stop().await;
    let b = run().start(false).await;
    let second = lines("b", 200);
    post_all_with_token(&b.url, Some(token), &second, 50).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = reqwest::get(format!("{}/delivery", b.url))
            .await
            .expect("delivery");
        if r.status() == 503 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivering with Kinesis away"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.kill().await;

    // A third, still without Kinesis: a fourth on the same volume is refused meanwhile.
    let c = run().start(false).await;
    let third = lines("c", 100);
    post_all_with_token(&c.url, Some(token), &third, 50).await;
    let d = run().output().await;
    assert_eq!(d.code, Some(1), "{}", d.stderr);
    assert!(
        d.stderr.contains("is in use by another collector"),
        "{}",
        d.stderr
    );

    // Kinesis is back: every line of the three containers, exactly once.
    kinesis.resume().await;
    let all: Vec<String> = [first, second, third].concat();
    let records = kc
        .wait_for_lines(stream_name, all.len(), Duration::from_secs(120))
        .await;
    exactly_once(&records, &all);
    stop_gracefully(c).await;
    exactly_once(&kc.read_all(stream_name).await, &all);
}

#[tokio::test]
async fn bad_input_stops_the_container_with_the_collectors_message() {
    let image = built_image().await;
    let bin = tokio::task::spawn_blocking(static_collector_bin)
        .await
        .expect("static binary");
    let dir = tempfile::tempdir().expect("tmp");

    // The docs' configuration and environment file pass check-config, run as the docs say.
    let (cfg, env_file) = write_config(dir.path(), &doc_config(), "");
    let checked = Run::new(&image.name)
        .option(&format!("--env-file={}", env_file.display()))
        .config(&cfg)
        .args(&["check-config", "--config", CONFIG_PATH])
        .output()
        .await;
    assert_eq!(checked.code, Some(0), "{}", checked.stderr);
    assert!(
        checked.stdout.contains("/var/lib/edgelog/buffer"),
        "{}",
        checked.stdout
    );
    assert!(
        !checked
            .stdout
            .contains(&doc_env_map()["EDGELOG_INGEST_TOKEN"]),
        "the token is printed"
    );

    // No configuration: the default command and check-config say the same, exit 1.
    let served = Run::new(&image.name).output().await;
    let checked = Run::new(&image.name)
        .args(&["check-config", "--config", CONFIG_PATH])
        .output()
        .await;
    assert_eq!((served.code, checked.code), (Some(1), Some(1)));
    assert!(served.stderr.contains(CONFIG_PATH), "{}", served.stderr);
    assert_eq!(served.stderr, checked.stderr);

    // A configuration that fails validation (a variable the environment file lacks, a bad
    // value): the container's message is the one check-config prints.
    let without_token: String = doc_env()
        .lines()
        .filter(|l| !l.starts_with("EDGELOG_INGEST_TOKEN="))
        .map(|l| format!("{l}\n"))
        .collect();
    let bad_value = doc_config().replace("shutdown_timeout: 30s", "shutdown_timeout: soon");
    assert_ne!(bad_value, doc_config());
    for (i, (config, env)) in [(doc_config(), without_token), (bad_value, doc_env())]
        .into_iter()
        .enumerate()
    {
        let case = dir.path().join(format!("bad-{i}"));
        std::fs::create_dir(&case).expect("dir");
        let cfg = case.join("collector.yaml");
        std::fs::write(&cfg, &config).expect("config");
        let env_file = case.join("collector.env");
        std::fs::write(&env_file, &env).expect("env");
        let served = Run::new(&image.name)
            .option(&format!("--env-file={}", env_file.display()))
            .config(&cfg)
            .output()
            .await;
        let vars: Vec<(String, String)> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let checked = std::process::Command::new(&bin)
            .args(["check-config", "--config"])
            .arg(&cfg)
            .env_clear()
            .envs(vars)
            .output()
            .expect("check-config");
        let checked_err = String::from_utf8_lossy(&checked.stderr);
        assert_eq!(checked.status.code(), Some(1), "{checked_err}");
        assert_eq!(served.code, Some(1), "{}", served.stderr);
        assert_eq!(served.stderr, checked_err, "case {i}");
    }

    // A buffer volume mounted read-only: named in the message. It holds a buffer already, as a
    // volume in use does.
    let volume = Volume::create().await;
    let (cfg, env_file) = write_config(
        dir.path(),
        &config_on_loopback(),
        &format!(
            "AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:{}\n",
            free_port()
        ),
    );
    let c = collector_run(&image.name, &volume.name, &cfg, &env_file)
        .start(false)
        .await;
    stop_gracefully(c).await;
    let ro = collector_run(&image.name, &format!("{}:ro", volume.name), &cfg, &env_file)
        .output()
        .await;
    assert_eq!(ro.code, Some(1), "{}", ro.stderr);
    assert!(
        ro.stderr.contains("/var/lib/edgelog/buffer/LOCK")
            && ro.stderr.contains("Read-only file system"),
        "{}",
        ro.stderr
    );

    // A host directory the collector's user cannot write.
    let host_dir = tempfile::tempdir().expect("tmp");
    let denied = collector_run(
        &image.name,
        &host_dir.path().display().to_string(),
        &cfg,
        &env_file,
    )
    .output()
    .await;
    assert_eq!(denied.code, Some(1), "{}", denied.stderr);
    assert!(
        denied.stderr.contains("/var/lib/edgelog/buffer")
            && denied.stderr.contains("Permission denied"),
        "{}",
        denied.stderr
    );
}

#[tokio::test]
async fn the_https_clients_trust_the_bundle_at_the_images_ca_path() {
    let image = built_image().await;
    let env = doc_env_map();
    let stream_name = env["EDGELOG_STREAM"].as_str();
    let (kinesalite, kc) = stream(stream_name, 1).await;
    let ca = TestCa::new("edgelog image test CA");
    let front = spawn_tls_front(kinesalite.port, &ca.server()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let (cfg, env_file) = write_config(
        dir.path(),
        &config_on_loopback(),
        &format!("AWS_ENDPOINT_URL_KINESIS={}\n", front.url),
    );
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write the CA");

    // The image's own bundle does not hold the test CA: Kinesis over HTTPS is not reachable.
    let volume = Volume::create().await;
    let c = collector_run(&image.name, &volume.name, &cfg, &env_file)
        .start(false)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let why = loop {
        let r = reqwest::get(format!("{}/delivery", c.url))
            .await
            .expect("delivery");
        let (code, body) = (r.status(), r.text().await.unwrap_or_default());
        if code == 503 && body.contains("aws_kinesis") {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("with the image's bundle: {why}");
    stop_gracefully(c).await;

    // The same bundle path holding the test CA: lines reach Kinesis through TLS.
    let c = collector_run(&image.name, &volume.name, &cfg, &env_file)
        .volume(&format!(
            "{}:/etc/ssl/certs/ca-certificates.crt:ro",
            ca_file.display()
        ))
        .start(false)
        .await;
    let posted = lines("tls", 100);
    post_all_with_token(&c.url, Some(&env["EDGELOG_INGEST_TOKEN"]), &posted, 50).await;
    let records = kc
        .wait_for_lines(stream_name, posted.len(), Duration::from_secs(60))
        .await;
    exactly_once(&records, &posted);
    stop_gracefully(c).await;

    // An image built with the test CA as its bundle (EDGELOG_CA_BUNDLE): no mount needed.
    let own = OwnImage::build(
        "edgelog-collector-test-ca",
        &[("EDGELOG_CA_BUNDLE", &ca_file.display().to_string())],
    )
    .await;
    assert_eq!(
        image_file(&own.0.name, "/etc/ssl/certs/ca-certificates.crt").await,
        ca.pem().into_bytes()
    );
    let c = collector_run(&own.0.name, &volume.name, &cfg, &env_file)
        .start(false)
        .await;
    let more = lines("tls-own", 100);
    post_all_with_token(&c.url, Some(&env["EDGELOG_INGEST_TOKEN"]), &more, 50).await;
    let all = [posted, more].concat();
    let records = kc
        .wait_for_lines(stream_name, all.len(), Duration::from_secs(60))
        .await;
    exactly_once(&records, &all);
    stop_gracefully(c).await;

    // No certificate at all there: the collector cannot build its HTTPS clients, and stops
    // (plain-HTTP endpoints need the bundle too).
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).expect("dir");
    let (cfg, env_file) = write_config(
        &plain,
        &config_on_loopback(),
        &format!("AWS_ENDPOINT_URL_KINESIS={}\n", kinesalite.endpoint),
    );
    let out = collector_run(&image.name, &volume.name, &cfg, &env_file)
        .volume(&format!(
            "{}:/etc/ssl/certs/ca-certificates.crt:ro",
            empty.display()
        ))
        .output()
        .await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("output failed to start"),
        "{}",
        out.stderr
    );
}

/// A value at a path of YAML mappings (`a.b.c`), or a panic naming the path.
fn at<'a>(v: &'a serde_norway::Value, path: &str) -> &'a serde_norway::Value {
    path.split('.').fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("no {path} (at {k}) in {v:?}"))
    })
}

#[tokio::test]
async fn the_docs_kubernetes_objects_fit_the_image_and_the_configuration() {
    use serde::Deserialize;
    let image = built_image().await;
    let env = doc_env_map();
    let config = collector::config::Config::from_yaml(&doc_config(), &|k| env.get(k).cloned())
        .expect("the docs' configuration");
    let objects: Vec<serde_norway::Value> =
        serde_norway::Deserializer::from_str(&doc_block(DOC, "The objects: the buffer's volume"))
            .map(|d| serde_norway::Value::deserialize(d).expect("YAML"))
            .collect();
    let kind = |k: &str| {
        objects
            .iter()
            .find(|o| at(o, "kind").as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let commands = doc_block(
        DOC,
        "the secrets from a Secret made of the environment file:",
    );
    let deployment = kind("Deployment");
    assert_eq!(at(deployment, "spec.replicas").as_u64(), Some(1));
    assert_eq!(
        at(deployment, "spec.strategy.type").as_str(),
        Some("Recreate")
    );
    let pod = at(deployment, "spec.template.spec");
    let grace = at(pod, "terminationGracePeriodSeconds")
        .as_u64()
        .expect("seconds");
    assert!(
        Duration::from_secs(grace) > config.shutdown_timeout,
        "terminationGracePeriodSeconds {grace} is not above shutdown_timeout {:?}",
        config.shutdown_timeout
    );
    let user = inspect_image(&image.name, "{{.Config.User}}").await;
    let (uid, gid) = user.split_once(':').expect("uid:gid");
    assert_eq!(
        at(pod, "securityContext.runAsUser")
            .as_u64()
            .map(|u| u.to_string())
            .as_deref(),
        Some(uid)
    );
    assert_eq!(
        at(pod, "securityContext.runAsGroup")
            .as_u64()
            .map(|u| u.to_string())
            .as_deref(),
        Some(gid)
    );
    assert_eq!(
        at(pod, "securityContext.fsGroup")
            .as_u64()
            .map(|u| u.to_string())
            .as_deref(),
        Some(gid)
    );
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );

    let container = &at(pod, "containers")[0];
    let listen_port: u64 = config
        .listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let admin_port: u64 = config
        .admin_listen
        .as_deref()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("admin port");
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(
            at(container, &format!("{probe}.httpGet.path")).as_str(),
            Some(path)
        );
        assert_eq!(
            at(container, &format!("{probe}.httpGet.port")).as_u64(),
            Some(listen_port)
        );
    }
    let ports: BTreeSet<String> = at(container, "ports")
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| format!("{}/tcp", at(p, "containerPort").as_u64().expect("port")))
        .collect();
    assert_eq!(
        ports,
        BTreeSet::from([format!("{listen_port}/tcp"), format!("{admin_port}/tcp")])
    );
    let exposed = inspect_image(&image.name, "{{json .Config.ExposedPorts}}").await;
    for p in &ports {
        assert!(
            exposed.contains(p.as_str()),
            "{p} is not exposed by the image: {exposed}"
        );
    }
    assert_eq!(
        at(container, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    let secret = at(container, "envFrom")[0]["secretRef"]["name"]
        .as_str()
        .expect("secret");
    assert!(commands.contains(&format!(
        "create secret generic {secret} --from-env-file=collector.env"
    )));

    // The buffer volume where the image keeps its state (and the configuration puts the buffer
    // and the dead letters); the ConfigMap's file where the image reads it.
    let mounts: HashMap<String, (String, bool)> = at(container, "volumeMounts")
        .as_sequence()
        .expect("mounts")
        .iter()
        .map(|m| {
            (
                at(m, "name").as_str().expect("name").to_string(),
                (
                    at(m, "mountPath").as_str().expect("path").to_string(),
                    m.get("readOnly").and_then(|r| r.as_bool()).unwrap_or(false),
                ),
            )
        })
        .collect();
    let volumes = at(pod, "volumes").as_sequence().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| at(v, "name").as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    assert_eq!(mounts["buffer"], (STATE_DIR.to_string(), false));
    assert!(config.buffer.dir.starts_with(STATE_DIR));
    assert!(config.dead_letter.path.starts_with(STATE_DIR));
    let claim = at(volume("buffer"), "persistentVolumeClaim.claimName").as_str();
    assert_eq!(
        claim,
        at(kind("PersistentVolumeClaim"), "metadata.name").as_str()
    );
    let config_path = Path::new(CONFIG_PATH);
    assert_eq!(
        mounts["config"],
        (
            config_path.parent().expect("dir").display().to_string(),
            true
        )
    );
    let config_map = at(volume("config"), "configMap.name")
        .as_str()
        .expect("name");
    let file = config_path.file_name().expect("file").to_string_lossy();
    assert!(commands.contains(&format!("create configmap {config_map} --from-file={file}")));

    let service = kind("Service");
    assert!(
        at(service, "spec")
            .get("publishNotReadyAddresses")
            .is_none(),
        "readiness means taking batches: a pod that is not ready must not get traffic"
    );
    assert_eq!(
        at(service, "spec.ports")[0]["targetPort"].as_u64(),
        Some(listen_port)
    );
    assert_eq!(
        at(service, "spec.selector.app").as_str(),
        at(deployment, "spec.template.metadata.labels.app").as_str()
    );
}
