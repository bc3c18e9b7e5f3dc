//! edgelog's test kit: starts the real components of the data path on free loopback ports, one
//! `spawn_*` helper each, and reads back what they received.
//!
//! Invariant: a component that is missing from the machine makes the test fail with the command
//! that installs it; nothing is skipped quietly.
//!
//! Where to find what:
//! - the peers: [`origin`] (an HTTP origin), [`viceroy`] (the edge app's wasm), [`standin`]
//!   (Fastly's log delivery), [`kinesis`] (kinesalite), [`kinesis_front`] (throttling and
//!   failures Kinesis gives), [`kinesis_stub`] (a no-op Kinesis for benchmarks), [`s3`]
//!   (s3s-fs), [`s3_front`] and [`s3_stub`], [`sts`] (moto's STS and IAM), [`prometheus`],
//!   [`browser`] (headless Chromium), [`haproxy`] (a load balancer before several collectors);
//! - the collector: [`collector`] (in-process or as its binary; posting, `/metrics`, `/readyz`,
//!   `/status`, start errors), [`config_yaml`] (its configuration, built key by key),
//!   [`buffer`] (the disk buffer's files);
//! - what the tests post and check: [`delivery`] (the Kinesis tests' configuration, numbered
//!   lines, exactly once), [`numbered`] (continuous load remembering what got a 2xx), [`fastly`]
//!   (bodies as Fastly builds them), [`kpl`], [`load`];
//! - the shipped monitoring files read and checked: [`monitoring`];
//! - plumbing: [`procs`] (child processes, [`procs::until`] for polling), [`http`] (clients),
//!   [`paths`] (the repository, the build, installed tools), [`certs`], [`disk`] (a small
//!   tmpfs).

pub mod browser;
pub mod buffer;
pub mod certs;
pub mod collector;
pub mod config_yaml;
pub mod consumers;
pub mod container;
pub mod delivery;
pub mod disk;
pub mod fastly;
pub mod haproxy;
pub mod http;
pub mod kinesis;
pub mod kinesis_front;
pub mod kinesis_stub;
pub mod kpl;
pub mod load;
pub mod monitoring;
pub mod numbered;
pub mod origin;
pub mod paths;
pub mod procs;
pub mod prometheus;
pub mod promql;
pub mod s3;
pub mod s3_front;
pub mod s3_stub;
pub mod standin;
pub mod sts;
pub mod tls_front;
pub mod viceroy;

pub use collector::{spawn_collector, RunningCollector};
pub use kinesis::{spawn_kinesalite, DurableKinesalite, Kinesalite, KinesisClient};
pub use kinesis_front::{spawn_kinesis_front, Faults, KinesisFront};
pub use origin::{spawn_origin, Origin};
pub use s3::{spawn_s3, S3Client, S3Store};
pub use viceroy::{
    spawn_viceroy, spawn_viceroy_with_standin, testkit_bin, EdgeSetup, EdgeWithStandin, Viceroy,
};

#[cfg(test)]
mod layout {
    use crate::paths::repo_root;
    use std::collections::BTreeSet;

    /// The `path` of every `[[test]]` in tests/Cargo.toml.
    fn registered() -> BTreeSet<String> {
        let manifest = std::fs::read_to_string(repo_root().join("tests/Cargo.toml"))
            .expect("tests/Cargo.toml");
        manifest
            .split("[[test]]")
            .skip(1)
            .map(|entry| {
                entry
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("path = "))
                    .unwrap_or_else(|| panic!("a [[test]] without a path: {entry}"))
                    .trim_matches('"')
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn every_test_file_is_registered_says_what_it_covers_and_is_in_the_testing_page() {
        let dir = repo_root().join("tests");
        let files: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("tests/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".rs"))
            .collect();
        assert_eq!(
            files,
            registered(),
            "tests/*.rs and the [[test]]s of tests/Cargo.toml"
        );
        let page =
            std::fs::read_to_string(repo_root().join("docs/testing.md")).expect("docs/testing.md");
        let listed: BTreeSet<String> = page
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(f, _)| f.to_string()))
            .collect();
        assert_eq!(files, listed, "tests/*.rs and the table of docs/testing.md");
        for f in &files {
            let text = std::fs::read_to_string(dir.join(f)).expect("a test file");
            assert!(
                text.starts_with("//! "),
                "{f} does not start with a //! line saying what it covers"
            );
        }
    }
}
