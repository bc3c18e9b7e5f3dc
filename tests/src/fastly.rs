//! Request bodies built the way Fastly's HTTPS logging endpoint builds them: `json_format` 0, 1
//! or 2, `compression_codec` gzip, zstd or snappy, and the `classic` message_type prefix.
//!
//! Where Fastly's behaviour is not documented (whether Content-Encoding is set; raw or framed
//! snappy) both forms can be produced.

use bytes::Bytes;
use std::io::Write;

/// Fastly's `json_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonFormat {
    /// "0": lines as formatted, newline-delimited.
    None,
    /// "1": the batch is one JSON array of entries.
    Array,
    /// "2": newline-delimited JSON.
    NewlineDelimited,
}

impl JsonFormat {
    pub fn parse(s: &str) -> Option<JsonFormat> {
        match s {
            "0" => Some(JsonFormat::None),
            "1" => Some(JsonFormat::Array),
            "2" => Some(JsonFormat::NewlineDelimited),
            _ => None,
        }
    }
}

/// Fastly's `compression_codec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Zstd,
    /// Snappy framing format.
    Snappy,
    /// Raw (unframed) snappy.
    SnappyRaw,
}

impl Codec {
    pub fn parse(s: &str) -> Option<Codec> {
        match s {
            "" | "none" => Some(Codec::None),
            "gzip" => Some(Codec::Gzip),
            "zstd" => Some(Codec::Zstd),
            "snappy" => Some(Codec::Snappy),
            "snappy-raw" => Some(Codec::SnappyRaw),
            _ => None,
        }
    }

    fn content_encoding(self) -> Option<&'static str> {
        match self {
            Codec::None => None,
            Codec::Gzip => Some("gzip"),
            Codec::Zstd => Some("zstd"),
            Codec::Snappy | Codec::SnappyRaw => Some("snappy"),
        }
    }
}

/// How one endpoint formats its batches.
#[derive(Clone, Debug)]
pub struct BatchFormat {
    pub json_format: JsonFormat,
    pub codec: Codec,
    /// Send `Content-Encoding` for the codec (else the receiver must sniff).
    pub content_encoding_header: bool,
    /// Prefix each line with the `classic` syslog-style header.
    pub classic_prefix: bool,
    /// The endpoint name in the classic prefix.
    pub endpoint_name: String,
    pub content_type: Option<String>,
}

impl Default for BatchFormat {
    fn default() -> Self {
        BatchFormat {
            json_format: JsonFormat::None,
            codec: Codec::None,
            content_encoding_header: true,
            // Fastly's `message_type` defaults to classic.
            classic_prefix: true,
            endpoint_name: "collector".into(),
            content_type: None,
        }
    }
}

/// `<134>2016-07-04T22:37:26Z cache-sjc3128 LogTest[62959]: `
pub fn classic_prefix(endpoint: &str) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    format!(
        "<134>{now} cache-local0001 {endpoint}[{}]: ",
        std::process::id()
    )
}

/// A request as Fastly would send it: headers and body.
#[derive(Clone, Debug)]
pub struct Batch {
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl BatchFormat {
    /// Builds one request body from lines.
    pub fn build<L: AsRef<[u8]>>(&self, lines: &[L]) -> Batch {
        let mut plain = Vec::new();
        match self.json_format {
            JsonFormat::Array => {
                plain.push(b'[');
                for (i, l) in lines.iter().enumerate() {
                    if i > 0 {
                        plain.push(b',');
                    }
                    let l = l.as_ref();
                    if serde_json::from_slice::<serde_json::Value>(l).is_ok() {
                        plain.extend_from_slice(l);
                    } else {
                        let s = String::from_utf8_lossy(l);
                        plain.extend_from_slice(
                            serde_json::to_string(&s).unwrap_or_default().as_bytes(),
                        );
                    }
                }
                plain.push(b']');
            }
            JsonFormat::None | JsonFormat::NewlineDelimited => {
                let prefix = self
                    .classic_prefix
                    .then(|| classic_prefix(&self.endpoint_name));
                for l in lines {
                    if let Some(p) = &prefix {
                        plain.extend_from_slice(p.as_bytes());
                    }
                    plain.extend_from_slice(l.as_ref());
                    plain.push(b'\n');
                }
            }
        }
        let body = compress(self.codec, &plain);
        let mut headers = Vec::new();
        // Fastly sends a Content-Type only when the endpoint has one configured.
        if let Some(ct) = &self.content_type {
            headers.push(("content-type".to_string(), ct.clone()));
        }
        if self.content_encoding_header {
            if let Some(ce) = self.codec.content_encoding() {
                headers.push(("content-encoding".to_string(), ce.to_string()));
            }
        }
        Batch {
            headers,
            body: Bytes::from(body),
        }
    }
}

/// Compresses with a codec.
pub fn compress(codec: Codec, plain: &[u8]) -> Vec<u8> {
    match codec {
        Codec::None => plain.to_vec(),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = e.write_all(plain);
            e.finish().unwrap_or_default()
        }
        Codec::Zstd => zstd::encode_all(plain, 3).unwrap_or_default(),
        Codec::Snappy => {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            let _ = e.write_all(plain);
            e.into_inner().unwrap_or_default()
        }
        Codec::SnappyRaw => snap::raw::Encoder::new()
            .compress_vec(plain)
            .unwrap_or_default(),
    }
}
