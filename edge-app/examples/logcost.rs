//! Per-request cost of logging in the edge app, measured inside the wasm under Viceroy.
//!
//! Run with `scripts/bench-edge`. Each case runs in interleaved rounds so that machine noise
//! hits all of them alike; the figure is the median over rounds of the mean per request.

#[cfg(target_arch = "wasm32")]
fn main() {
    use edge_app::app::{request_facts, LineWriter};
    use edge_app::emit::plan;
    use edge_app::facts::Outcome;
    use edge_app::format::Template;
    use edge_app::settings::{LineFormat, Settings, Target};
    use edge_app::timefmt::Micros;
    use fastly::Request;
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
    let json = Settings::default();
    let clf = Settings {
        format: LineFormat::Template(Template::clf()),
        ..Settings::default()
    };
    // The README's example of Fastly's JSON log format for VCL services.
    let readme = include_str!("../../README.md");
    let vcl_spec = readme
        .split_once("Fastly's own JSON log format for VCL services works as it is")
        .and_then(|(_, rest)| rest.split_once("```text\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block.trim_end())
        .expect("the README's VCL JSON example");
    let vcl = Settings {
        format: LineFormat::Template(Template::parse(vcl_spec).expect("the example parses")),
        ..Settings::default()
    };
    let off = Settings {
        sample_rate: 0.0,
        ..Settings::default()
    };
    let writer = LineWriter::init(&json);
    let target = Target::Named("collector".into());
    let finish = |f: &mut edge_app::facts::Facts| {
        f.status = 200;
        f.response_headers = vec![
            ("content-type".into(), b"image/jpeg".to_vec()),
            ("content-length".into(), b"48213".to_vec()),
        ];
        f.response_body_bytes = 48_213;
        f.elapsed_us = 1234;
        f.outcome = Outcome::Origin;
    };

    type Case<'a> = (&'static str, Box<dyn Fn(u64) + 'a>);
    let cases: Vec<Case> = vec![
        (
            "no logging (empty loop)",
            Box::new(|i| {
                black_box(i);
            }),
        ),
        (
            "gather facts only",
            Box::new(|i| {
                let mut f = request_facts(&req, Micros(i as i64), format!("{i:032x}"));
                finish(&mut f);
                black_box(&f);
            }),
        ),
        (
            "sampled out (sample_rate 0)",
            Box::new(|i| {
                let mut f = request_facts(&req, Micros(i as i64), format!("{i:032x}"));
                finish(&mut f);
                black_box(plan(&mut f, &off));
            }),
        ),
        (
            "build JSON line, no write",
            Box::new(|i| {
                let mut f = request_facts(&req, Micros(i as i64), format!("{i:032x}"));
                finish(&mut f);
                black_box(plan(&mut f, &json));
            }),
        ),
        (
            "build JSON + write endpoint",
            Box::new(|i| {
                let mut f = request_facts(&req, Micros(i as i64), format!("{i:032x}"));
                finish(&mut f);
                if let Some(e) = plan(&mut f, &json) {
                    writer.write(&target, &e.line);
                }
            }),
        ),
        (
            "build VCL JSON format + write",
            Box::new(|i| {
                let mut f = request_facts(&req, Micros(i as i64), format!("{i:032x}"));
                finish(&mut f);
                if let Some(e) = plan(&mut f, &vcl) {
                    writer.write(&target, &e.line);
                }
            }),
        ),
        (
            "build CLF + write endpoint",
            Box::new(|i| {
                let mut f = request_facts(&req, Micros(i as i64), format!("{i:032x}"));
                finish(&mut f);
                if let Some(e) = plan(&mut f, &clf) {
                    writer.write(&target, &e.line);
                }
            }),
        ),
    ];

    let rounds = 15;
    let per_round: u64 = 2_000;
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
    let mut probe = request_facts(&req, Micros(0), format!("{:032x}", 0));
    finish(&mut probe);
    if let Some(e) = plan(&mut probe, &json) {
        eprintln!("JSON line length: {} bytes", e.line.len());
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("run with scripts/bench-edge (wasm32-wasip1 under Viceroy)");
}
