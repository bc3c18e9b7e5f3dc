//! Makes "Use edgelog in your own Compute app" of `docs/edge-library.md` into a fresh Compute
//! project in the given directory, builds it for wasm32-wasip1 and prints the wasm's path (for
//! `scripts/bench-edge`, which reports its size).

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: library-app DIR");
        std::process::exit(2);
    };
    let wasm = edgelog_testkit::paths::library_app(std::path::Path::new(&dir));
    println!("{}", wasm.display());
}
