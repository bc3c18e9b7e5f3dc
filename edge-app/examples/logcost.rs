//! Per-request cost of logging with edgelog, measured inside the wasm under Viceroy through the
//! library's public API.
//!
//! Run with `scripts/bench-edge`. Each case runs in interleaved rounds so that machine noise
//! hits all of them alike; the figure is the median over rounds of the mean per request.

#[cfg(target_arch = "wasm32")]
fn main() {
    use edgelog::Logger;
    use fastly::{Request, Response};
    use std::hint::black_box;
    use std::time::Instant;

    let req = Request::get("https://www.example.com/products/42/images/hero.jpg?size=large&v=3")
        .with_header("host", "www.example.com")
        .with_header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36")
        .with_header("accept", "image/avif,image/webp,image/apng,image/*,*/*;q=0.8")
        .with_header("accept-language", "en-US,en;q=0.9,de;q=0.8")
        .with_header("accept-encoding", "gzip, deflate, br")
        .with_header("referer", "https://www.example.com/products/42")
        .with_header("cookie", "session=abcdef0123456789; theme=dark")
        .with_header("sec-fetch-dest", "image");
    let resp = Response::from_status(200)
        .with_header("content-type", "image/jpeg")
        .with_header("content-length", "48213");
    let logger = |b: edgelog::Builder| b.endpoint("collector").build().expect("settings");
    let json = logger(Logger::builder());
    let clf = logger(Logger::builder().format("clf"));
    // The example of Fastly's JSON log format for VCL services in docs/edge-library.md.
    let doc = include_str!("../../docs/edge-library.md");
    let vcl_spec = doc
        .split_once("Fastly's own JSON log format for VCL services works as it is")
        .and_then(|(_, rest)| rest.split_once("```text\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block.trim_end())
        .expect("the VCL JSON example of docs/edge-library.md");
    let vcl = logger(Logger::builder().format(vcl_spec));
    let off = logger(Logger::builder().sample_rate(0.0));
    // Sampled out but with an error endpoint: every fact is gathered (the request could still
    // fail), and a 200 writes nothing.
    let gather = logger(Logger::builder().sample_rate(0.0).error_endpoint("errors"));

    let endpoint = std::cell::RefCell::new(fastly::log::Endpoint::from_name("collector"));
    let plain = vec![b'x'; 900];
    use std::io::Write;

    type Case<'a> = (&'static str, Box<dyn Fn(u64) + 'a>);
    let cases: Vec<Case> = vec![
        (
            "no logging (empty loop)",
            Box::new(|i| {
                black_box(i);
            }),
        ),
        (
            "write a 900-byte line only",
            Box::new(|_| {
                // The hostcall alone, through Fastly's own API: the floor under every case that
                // writes.
                let _ = endpoint.borrow_mut().write_all(&plain);
            }),
        ),
        (
            "start + finish, sampled out",
            Box::new(|_| off.start(&req).finish(&resp)),
        ),
        (
            "gather facts, nothing written",
            Box::new(|_| gather.start(&req).finish(&resp)),
        ),
        (
            "default JSON line + write",
            Box::new(|_| json.start(&req).finish(&resp)),
        ),
        (
            "JSON + 3 own fields + write",
            Box::new(|i| {
                let mut record = json.start(&req);
                record
                    .field("tier", "gold")
                    .field("cart_items", i)
                    .field("beta", true);
                record.finish(&resp)
            }),
        ),
        (
            "VCL JSON format + write",
            Box::new(|_| vcl.start(&req).finish(&resp)),
        ),
        (
            "CLF line + write",
            Box::new(|_| clf.start(&req).finish(&resp)),
        ),
        (
            "logger set-up (builder)",
            Box::new(|_| {
                black_box(logger(Logger::builder()));
            }),
        ),
    ];

    let rounds = 41;
    let per_round: u64 = 1_000;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut i = 0u64;
    for _ in 0..rounds {
        for (c, (_, f)) in cases.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..per_round {
                f(i);
                i += 1;
            }
            samples[c].push(t.elapsed().as_nanos() as f64 / per_round as f64);
        }
    }
    eprintln!("{:<32} {:>12} {:>12}", "case", "median ns", "min ns");
    for ((name, _), s) in cases.iter().zip(samples.iter_mut()) {
        s.sort_by(|a, b| a.total_cmp(b));
        eprintln!("{:<32} {:>12.0} {:>12.0}", name, s[s.len() / 2], s[0]);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("run with scripts/bench-edge (wasm32-wasip1 under Viceroy)");
}
