//! Decoding bodies: tests.

use super::*;
use std::io::Write;

fn opts() -> FrameOptions {
    FrameOptions {
        framing: Framing::Auto,
        json_content_type: false,
        strip_prefix: true,
        max_line_bytes: 1 << 20,
    }
}

fn lines(f: &Framed) -> Vec<String> {
    f.batch
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

fn yes(_: usize) -> bool {
    true
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn clean_ndjson_is_zero_copy() {
    let body = Bytes::from_static(b"{\"a\":1}\n{\"b\":2}\n");
    let f = frame(body.clone(), &opts()).expect("frame");
    assert_eq!(lines(&f), vec!["{\"a\":1}", "{\"b\":2}"]);
    assert_eq!(f.batch.joined().as_ptr(), body.as_ptr(), "no copy");
    let f = frame(Bytes::from_static(b"x"), &opts()).expect("frame");
    assert_eq!(lines(&f), vec!["x"]);
}

#[test]
fn empty_lines_and_crlf_are_handled() {
    let f = frame(Bytes::from_static(b"\n\na\r\n\r\nb\n\n"), &opts()).expect("frame");
    assert_eq!(lines(&f), vec!["a", "b"]);
    assert!(frame(Bytes::new(), &opts())
        .expect("empty")
        .batch
        .is_empty());
    assert!(frame(Bytes::from_static(b"\n\r\n"), &opts())
        .expect("blank")
        .batch
        .is_empty());
}

#[test]
fn non_utf8_lines_pass_through_as_bytes() {
    let f = frame(Bytes::from_static(b"ok\n\xff\xfe\x00raw\n"), &opts()).expect("frame");
    assert_eq!(f.batch.line_ref(1), b"\xff\xfe\x00raw");
}

#[test]
fn oversized_lines_stay_in_the_batch_and_are_counted() {
    let o = FrameOptions {
        max_line_bytes: 4,
        ..opts()
    };
    let f = frame(Bytes::from_static(b"abc\ntoolong\nxy\n"), &o).expect("frame");
    assert_eq!(lines(&f), vec!["abc", "toolong", "xy"]);
    assert_eq!(f.oversized, 1);
    let f = frame(Bytes::from_static(b"[\"abcdef\", 1]"), &o).expect("frame");
    assert_eq!(lines(&f), vec!["\"abcdef\"", "1"]);
    assert_eq!(f.oversized, 1);
}

#[test]
fn syslog_prefixes_are_stripped_by_shape_and_counted() {
    let body = Bytes::from_static(
            b"<134>2016-07-04T22:37:26Z cache-sjc3128 LogTest[62959]: {\"a\":1}\n\
              no prefix here\n\
              <134>2016-07-04T22:37:26Z cache-sjc3128 My Log Endpoint[62959]: 1.2.3.4 - - [x] \"GET /\" 200 5\n\
              <134>1 2016-07-04T22:37:26Z cache-sjc3128 LogTest 62959 - [abc@41058 tag=\"f\\]x\"] {\"l\":1}\n\
              <134>1 2016-07-04T22:37:26Z cache-sjc3128 LogTest 62959 - - {\"l\":2}\n\
              <134>1 2016-07-04T22:37:26Z cache-sjc3128 LogTest 62959 - {\"p\":3}\n",
        );
    let f = frame(body.clone(), &opts()).expect("frame");
    assert_eq!(
        lines(&f),
        vec![
            "{\"a\":1}",
            "no prefix here",
            "1.2.3.4 - - [x] \"GET /\" 200 5",
            "{\"l\":1}",
            "{\"l\":2}",
            "{\"p\":3}",
        ]
    );
    assert_eq!(f.stripped, 5);
    let kept = frame(
        body,
        &FrameOptions {
            strip_prefix: false,
            ..opts()
        },
    )
    .expect("frame");
    assert!(lines(&kept)[0].starts_with("<134>"));
    assert_eq!(kept.stripped, 0);
    for not_prefix in [
        &b"<abc>x y z: m"[..],
        b"<134>",
        b"<134>2016 host",
        b"<134>T h tag m",
        b"<1234>2 h t: m",
        b"<134>2016-07-04T22:37:26Z host tag: no pid",
        b"<134>2016-07-04T22:37:26Z host [123]: no name",
        b"<134>1 2016-07-04T22:37:26Z host app",
        b"<134>1 yesterday host app 1 - - m",
        b"{\"msg\":\"<134>2016-07-04T22:37:26Z h t[1]: inside\"}",
    ] {
        assert_eq!(
            strip_syslog_prefix(not_prefix),
            None,
            "{}",
            String::from_utf8_lossy(not_prefix)
        );
    }
}

#[test]
fn json_arrays_become_compact_lines() {
    let body =
        Bytes::from_static(b"[ {\"a\": 1, \"s\": \"x y\\\" z\"},\n {\"b\" : [1, 2]}, \"str\" ]");
    let f = frame(body, &opts()).expect("frame");
    assert!(f.json_array);
    assert_eq!(
        lines(&f),
        vec!["{\"a\":1,\"s\":\"x y\\\" z\"}", "{\"b\":[1,2]}", "\"str\""]
    );
    assert!(frame(Bytes::from_static(b"[]"), &opts())
        .expect("empty")
        .batch
        .is_empty());
}

#[test]
fn a_broken_json_array_is_an_error_but_clf_lines_are_not_arrays() {
    let err = frame(Bytes::from_static(b"[{\"a\":1},"), &opts()).unwrap_err();
    assert!(matches!(err, DecodeError::InvalidJsonArray(_)));
    let err = frame(
        Bytes::from_static(b"[1, 2"),
        &FrameOptions {
            json_content_type: true,
            ..opts()
        },
    )
    .unwrap_err();
    assert!(matches!(err, DecodeError::InvalidJsonArray(_)));
    // A text format that starts with %t is lines, not an array.
    let f = frame(
        Bytes::from_static(b"[10/Oct/2000:13:55:36 +0000] GET /\n"),
        &opts(),
    )
    .expect("frame");
    assert_eq!(f.batch.len(), 1);
    assert!(!f.json_array);
    let f = frame(
        Bytes::from_static(b"[\"x\"]\n"),
        &FrameOptions {
            framing: Framing::Lines,
            ..opts()
        },
    )
    .expect("frame");
    assert_eq!(lines(&f), vec!["[\"x\"]"]);
}

#[test]
fn codecs_by_header_and_by_magic() {
    let data = b"line one\nline two\n";
    let gz = gzip(data);
    let zs = zstd::encode_all(&data[..], 1).expect("zstd");
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    framed.write_all(data).expect("snappy");
    let framed = framed.into_inner().expect("snappy");
    let raw = snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy raw");
    type Case<'a> = (Option<&'a [u8]>, Vec<u8>, Codec);
    let cases: Vec<Case> = vec![
        (Some(b"gzip"), gz.clone(), Codec::Gzip),
        (None, gz, Codec::Gzip),
        (Some(b"zstd"), zs.clone(), Codec::Zstd),
        (None, zs, Codec::Zstd),
        (Some(b"snappy"), framed.clone(), Codec::SnappyFramed),
        (None, framed, Codec::SnappyFramed),
        (Some(b"snappy"), raw, Codec::SnappyRaw),
        (Some(b"identity"), data.to_vec(), Codec::Identity),
        (None, data.to_vec(), Codec::Identity),
    ];
    for (header, body, want) in cases {
        assert_eq!(select_codec(header, &body).expect("codec"), want);
        let f = decode_body(header, Bytes::from(body), 1 << 20, &opts(), &mut yes).expect("decode");
        assert_eq!(lines(&f), vec!["line one", "line two"], "{want:?}");
    }
    assert_eq!(
        select_codec(Some(b"br"), b"x").unwrap_err(),
        DecodeError::UnsupportedEncoding("br".into())
    );
    assert!(select_codec(Some(b"gzip, zstd"), b"x").is_err());
}

#[test]
fn corrupt_bodies_name_their_codec() {
    let mut gz = gzip(b"hello world, hello world, hello world\n");
    let n = gz.len();
    gz[n / 2] ^= 0xff;
    gz.truncate(n - 3);
    for (header, body, codec) in [
        (&b"gzip"[..], gz, "gzip"),
        (b"zstd", b"\x28\xb5\x2f\xfdgarbage".to_vec(), "zstd"),
        (
            b"snappy",
            b"\xff\x06\x00\x00sNaPpY\x01\x02".to_vec(),
            "snappy",
        ),
        (b"snappy", b"\x0a\xff\xff\xff".to_vec(), "snappy"),
        (b"gzip", b"not gzip at all".to_vec(), "gzip"),
    ] {
        match decode_body(Some(header), Bytes::from(body), 1 << 20, &opts(), &mut yes) {
            Err(DecodeError::Corrupt { codec: c, .. }) => assert_eq!(c, codec),
            other => panic!("{codec}: {other:?}"),
        }
    }
}

#[test]
fn a_gzip_bomb_stops_at_the_limit() {
    let bomb = gzip(&vec![b'a'; 50 << 20]); // 50 MiB of 'a', ~50 KiB compressed
    let mut reserved = 0usize;
    let err = decode_body(
        Some(b"gzip"),
        Bytes::from(bomb),
        1 << 20,
        &opts(),
        &mut |n| {
            reserved += n;
            true
        },
    )
    .unwrap_err();
    assert_eq!(err, DecodeError::TooLarge { limit: 1 << 20 });
    assert!(
        reserved <= (1 << 20) + 1,
        "inflated only up to the limit: {reserved}"
    );
    let err = decode_body(None, Bytes::from(vec![b'x'; 100]), 99, &opts(), &mut yes).unwrap_err();
    assert_eq!(err, DecodeError::TooLarge { limit: 99 });
    let raw = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 10_000])
        .expect("snappy");
    assert_eq!(
        decode_body(Some(b"snappy"), Bytes::from(raw), 1000, &opts(), &mut yes).unwrap_err(),
        DecodeError::TooLarge { limit: 1000 }
    );
}

#[test]
fn the_memory_budget_can_refuse() {
    let gz = gzip(&vec![b'a'; 3 << 20]);
    let mut calls = 0;
    let err = decode_body(
        Some(b"gzip"),
        Bytes::from(gz),
        10 << 20,
        &opts(),
        &mut |_| {
            calls += 1;
            calls < 2
        },
    )
    .unwrap_err();
    assert_eq!(err, DecodeError::OverBudget);
}

#[test]
fn exact_limit_is_accepted() {
    let data = vec![b'a'; 1000];
    let f = decode_body(
        Some(b"gzip"),
        Bytes::from(gzip(&data)),
        1000,
        &opts(),
        &mut yes,
    )
    .expect("fits");
    assert_eq!(f.batch.line_bytes(), 1000);
}

#[test]
fn saved_fuzz_inputs_still_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read input");
        fuzzing::check(&data);
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
