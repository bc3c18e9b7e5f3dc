//! Where the repository, the build output and the installed tools are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory, found from the running test binary (`<target>/<profile>/deps/x`),
/// so it is right whatever `CARGO_TARGET_DIR` the build used.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Finds an installed tool: on PATH, in ~/.cargo/bin, or in the npm cache the scripts install to.
/// Panics with the install command when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    candidates.push(Path::new(&home).join(".cargo/bin").join(name));
    candidates.push(npm_bin_dir().join(name));
    candidates.push(cache_dir().join("s3s/bin").join(name));
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run scripts/setup (it installs viceroy, kinesalite, s3s-fs and the Fastly CLI)")
        })
}

/// Where scripts/setup installs tools: `$EDGELOG_CACHE`, by default `~/.cache/edgelog`.
pub fn cache_dir() -> PathBuf {
    let cache = std::env::var("EDGELOG_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/edgelog",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    PathBuf::from(cache)
}

/// Where scripts/setup installs the npm tools (kinesalite, the Fastly CLI).
pub fn npm_bin_dir() -> PathBuf {
    cache_dir().join("npm/node_modules/.bin")
}

/// Builds the edge app's wasm (release, as published) once per test process and returns its
/// path. `test_routes` builds the variant with test-only routes under its own profile.
pub fn edge_wasm(test_routes: bool) -> PathBuf {
    static PLAIN: OnceLock<PathBuf> = OnceLock::new();
    static TEST_ROUTES: OnceLock<PathBuf> = OnceLock::new();
    let cell = if test_routes { &TEST_ROUTES } else { &PLAIN };
    cell.get_or_init(|| {
        let profile = if test_routes {
            "wasm-test-routes"
        } else {
            "release"
        };
        let mut args = vec!["-p", "edgelog", "--bin", "edge-app", "--profile", profile];
        if test_routes {
            args.extend(["--features", "test-routes"]);
        }
        build_wasm(&repo_root(), &args, &format!("{profile}/edge-app.wasm"))
    })
    .clone()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// The first fenced code block after `marker` in a Markdown file of the repository (`file`
/// relative to its root), without its fences; panics naming the file and the marker when there
/// is none.
pub fn doc_block(file: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join(file))
        .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let after = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("{file} has no {marker:?}"))
        .1;
    let start = after
        .find("```")
        .unwrap_or_else(|| panic!("no code block after {marker:?}"));
    let body = &after[start..];
    let body = &body[body.find('\n').map_or(body.len(), |i| i + 1)..];
    body[..body.find("```").unwrap_or(body.len())].to_string()
}

/// Builds one of the library's examples (`edge-app/examples/<name>.rs`) for wasm32-wasip1 and
/// returns the wasm's path.
pub fn edge_example_wasm(name: &str) -> PathBuf {
    let args = ["-p", "edgelog", "--release", "--example", name];
    build_wasm(
        &repo_root(),
        &args,
        &format!("release/examples/{name}.wasm"),
    )
}

/// Runs `cargo build --target wasm32-wasip1 <args>` in `dir`, into the shared target directory,
/// and returns `<target>/wasm32-wasip1/<wasm>`, which the build must have made.
fn build_wasm(dir: &Path, args: &[&str], wasm: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(dir)
        .args(["build", "--target", "wasm32-wasip1"])
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        // The project's own rust-toolchain.toml decides.
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build {args:?} in {} failed",
        dir.display()
    );
    let path = target_dir().join("wasm32-wasip1").join(wasm);
    assert!(path.is_file(), "{} missing after build", path.display());
    path
}

/// The page that shows how to use the library in a Compute app.
pub const LIBRARY_DOC: &str = "docs/edge-library.md";

/// A fresh Compute project made of the "Use edgelog in your own Compute app" snippets of
/// [`LIBRARY_DOC`]: `fastly` and the page's dependency line in `Cargo.toml` (the crates.io
/// `edgelog` patched to this checkout), the page's `src/main.rs` as it is, made in `dir`. Built
/// for wasm32-wasip1; returns the wasm.
pub fn library_app(dir: &Path) -> PathBuf {
    let marker = "## Use edgelog in your own Compute app";
    let dependency = doc_block(LIBRARY_DOC, marker);
    let main_rs = doc_block(LIBRARY_DOC, "A complete `src/main.rs`");
    let manifest = format!(
        "[package]\nname = \"library-app\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nfastly = \"0.13\"\n{dependency}\n\
         [patch.crates-io]\nedgelog = {{ path = {:?} }}\n\n[workspace]\n",
        repo_root().join("edge-app").display().to_string()
    );
    std::fs::create_dir_all(dir.join("src")).expect("create the project");
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    std::fs::write(dir.join("src/main.rs"), main_rs).expect("write src/main.rs");
    // The same toolchain and crate versions as this checkout, so nothing new is fetched.
    for file in ["rust-toolchain.toml", "Cargo.lock"] {
        std::fs::copy(repo_root().join(file), dir.join(file)).expect("copy toolchain and lock");
    }
    build_wasm(dir, &["--release"], "release/library-app.wasm")
}
