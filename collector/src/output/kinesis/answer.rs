//! Reading PutRecords answers: a 200's entries (which failed, which shards took the others) and
//! the error of any other status.
//!
//! A 200 is read by a fast path first, written for the shape Kinesis answers with (no spaces, the
//! keys Kinesis writes, strings without escapes); anything else, or anything it does not expect,
//! goes to serde_json, so both give the same answer for every body (a test checks that). The fast
//! path is hand-written because a benchmark says so: for a 500-entry answer, `cargo bench -p
//! collector -- put_records_answer` measured 25 µs against 57 µs for serde_json (medians, same
//! run); serde_json's reading was 7% of the collector's CPU in `scripts/bench`.
//!
//! Invariant: [`decode`] reports one outcome per entry, in order, or a [`CallError`].

use super::api::{CallError, PutResult};
use super::classify;
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
struct Response<'a> {
    #[serde(rename = "FailedRecordCount", default)]
    failed: u64,
    #[serde(rename = "Records", borrow, default)]
    records: Vec<ResultEntry<'a>>,
}

#[derive(Deserialize)]
struct ResultEntry<'a> {
    #[serde(rename = "ShardId", borrow, default)]
    shard_id: Option<Text<'a>>,
    #[serde(rename = "ErrorCode", borrow, default)]
    error_code: Option<Text<'a>>,
}

/// A string borrowed from the response unless it has escapes. (serde borrows a `Cow` only when
/// it is a field itself, not inside an `Option`: without this, every entry allocated.)
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(rename = "__type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(alias = "Message", borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// One entry's answer: its error code, or the shard that took it.
type Answer<'a> = (Option<&'a str>, Option<&'a str>);

/// Reads a 200 response: the failed entries (index, code) and the distinct shards named.
pub fn decode(body: &[u8], sent: usize) -> Result<PutResult, CallError> {
    match quick(body) {
        Some((failed, answers)) => tally(failed, &answers, sent),
        None => decode_with_serde(body, sent),
    }
}

/// [`decode`] without the fast path (what it falls back to).
pub fn decode_with_serde(body: &[u8], sent: usize) -> Result<PutResult, CallError> {
    let resp: Response = serde_json::from_slice(body).map_err(|e| {
        classify::outage(
            "ResponseError",
            format!("unreadable PutRecords response: {e}"),
        )
    })?;
    let answers: Vec<Answer> = resp
        .records
        .iter()
        .map(|r| {
            (
                r.error_code.as_ref().map(|t| &*t.0),
                r.shard_id.as_ref().map(|t| &*t.0),
            )
        })
        .collect();
    tally(resp.failed, &answers, sent)
}

fn tally(failed: u64, answers: &[Answer], sent: usize) -> Result<PutResult, CallError> {
    if answers.len() != sent {
        return Err(classify::outage(
            "MismatchedResponse",
            format!("{} results for {sent} records", answers.len()),
        ));
    }
    let out = PutResult::from_answers(answers.iter().copied());
    if failed as usize != out.failed.len() {
        tracing::debug!(
            reported = failed,
            counted = out.failed.len(),
            "FailedRecordCount disagrees with the entries"
        );
    }
    Ok(out)
}

/// The fast path: `None` as soon as the body is not in the shape it knows.
fn quick(body: &[u8]) -> Option<(u64, Vec<Answer<'_>>)> {
    let mut c = Cursor { b: body, i: 0 };
    let (mut failed, mut answers) = (0, Vec::new());
    c.eat(b'{')?;
    loop {
        let key = c.string()?;
        c.eat(b':')?;
        match key {
            b"FailedRecordCount" => failed = c.number()?,
            b"Records" => answers = c.records()?,
            b"EncryptionType" => {
                c.string()?;
            }
            _ => return None,
        }
        if c.eat(b',').is_none() {
            break;
        }
    }
    c.eat(b'}')?;
    (c.i == body.len()).then_some((failed, answers))
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&byte)).then(|| self.i += 1)
    }

    /// A string without escapes, as bytes.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = self.b.get(self.i..)?;
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[len] != b'"' {
            return None;
        }
        self.i += len + 1;
        Some(&rest[..len])
    }

    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.string()?).ok()
    }

    fn number(&mut self) -> Option<u64> {
        let digits = self.b[self.i..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let n = std::str::from_utf8(&self.b[self.i..self.i + digits])
            .ok()?
            .parse()
            .ok()?;
        self.i += digits;
        Some(n)
    }

    /// `[{"SequenceNumber":"…","ShardId":"…"},{"ErrorCode":"…","ErrorMessage":"…"},…]`
    fn records(&mut self) -> Option<Vec<Answer<'a>>> {
        let mut out = Vec::new();
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(out);
        }
        loop {
            self.eat(b'{')?;
            let (mut code, mut shard) = (None, None);
            if self.eat(b'}').is_none() {
                loop {
                    let key = self.string()?;
                    self.eat(b':')?;
                    match key {
                        b"ShardId" => shard = Some(self.text()?),
                        b"ErrorCode" => code = Some(self.text()?),
                        b"SequenceNumber" | b"ErrorMessage" => {
                            self.string()?;
                        }
                        _ => return None,
                    }
                    if self.eat(b',').is_none() {
                        break;
                    }
                }
                self.eat(b'}')?;
            }
            out.push((code, shard));
            if self.eat(b',').is_none() {
                break;
            }
        }
        self.eat(b']')?;
        Some(out)
    }
}

/// Turns a non-200 answer into a [`CallError`].
pub fn decode_error(status: u16, header_type: Option<&str>, body: &[u8]) -> CallError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let raw = parsed
        .as_ref()
        .and_then(|b| b.kind.as_deref())
        .or(header_type)
        .map(str::to_string);
    let code = match raw {
        // `com.amazonaws.kinesis.v20131202#ResourceNotFoundException` or `Code:...`.
        Some(t) => t
            .rsplit('#')
            .next()
            .unwrap_or(&t)
            .split(':')
            .next()
            .unwrap_or("")
            .to_string(),
        None => format!("HTTP{status}"),
    };
    let code = if code.is_empty() {
        format!("HTTP{status}")
    } else {
        code
    };
    let message = parsed
        .and_then(|b| b.message.map(|m| m.into_owned()))
        .unwrap_or_else(|| format!("HTTP {status}"));
    classify::call_error(code, message, status >= 500)
}

#[cfg(test)]
mod tests {
    use super::super::api::Fault;
    use super::*;

    /// A response as Kinesis writes it: `n` entries, every `fail_every`th one throttled.
    fn kinesis_answer(n: usize, fail_every: usize) -> String {
        let entries: Vec<String> = (0..n)
            .map(|i| {
                if fail_every > 0 && i % fail_every == 0 {
                    r#"{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000001 in stream s under account 123456789012."}"#.to_string()
                } else {
                    format!(
                        r#"{{"SequenceNumber":"4959{i:052}","ShardId":"shardId-{:012}"}}"#,
                        i % 4
                    )
                }
            })
            .collect();
        let failed = if fail_every > 0 {
            n.div_ceil(fail_every)
        } else {
            0
        };
        format!(
            r#"{{"EncryptionType":"NONE","FailedRecordCount":{failed},"Records":[{}]}}"#,
            entries.join(",")
        )
    }

    #[test]
    fn the_fast_path_reads_what_kinesis_sends_as_serde_json_does() {
        for (n, fail_every) in [(500, 0), (500, 7), (3, 1), (1, 0), (0, 0)] {
            let body = kinesis_answer(n, fail_every);
            assert!(
                quick(body.as_bytes()).is_some(),
                "fast path for {n}/{fail_every}"
            );
            let fast = decode(body.as_bytes(), n).expect("fast");
            assert_eq!(fast, decode_with_serde(body.as_bytes(), n).expect("serde"));
            assert_eq!(
                fast.failed.len(),
                n.div_ceil(fail_every.max(1)) * usize::from(fail_every > 0)
            );
            let mut took: Vec<usize> = (0..n)
                .filter(|i| fail_every == 0 || i % fail_every != 0)
                .map(|i| i % 4)
                .collect();
            took.sort();
            took.dedup();
            assert_eq!(fast.shards.len(), took.len());
        }
    }

    #[test]
    fn bodies_the_fast_path_does_not_know_are_read_by_serde_json_alike() {
        let same = [
            // Spaces and newlines.
            "{ \"FailedRecordCount\" : 0,\n \"Records\": [ {\"ShardId\": \"shardId-1\"} ] }",
            // An escape in a value.
            r#"{"FailedRecordCount":0,"Records":[{"ShardId":"shardId-\u0031"}]}"#,
            // A key it does not know, a null, a nested value.
            r#"{"FailedRecordCount":0,"Records":[{"ShardId":"s1","Extra":{"a":[1]}}],"More":null}"#,
            r#"{"FailedRecordCount":1,"Records":[{"ErrorCode":"InternalFailure","ErrorMessage":null}]}"#,
        ];
        for body in same {
            assert!(quick(body.as_bytes()).is_none(), "{body}");
            assert_eq!(
                decode(body.as_bytes(), 1).expect(body),
                decode_with_serde(body.as_bytes(), 1).expect(body)
            );
        }
        let bad = [
            "",
            "{",
            r#"{"FailedRecordCount":0,"Records":[{"ShardId":"s1"}"#,
            r#"{"FailedRecordCount":0,"Records":[{"ShardId":"s1"}]}trailing"#,
            r#"{"FailedRecordCount":-1,"Records":[{"ShardId":"s1"}]}"#,
            r#"{"FailedRecordCount":0,"Records":[{"ShardId":1}]}"#,
            r#"[{"ShardId":"s1"}]"#,
            "not json",
        ];
        for body in bad {
            assert_eq!(
                decode(body.as_bytes(), 1).map_err(|e| e.fault),
                Err(Fault::Outage),
                "{body}"
            );
        }
        // Invalid UTF-8 in a shard id.
        let mut body = br#"{"FailedRecordCount":0,"Records":[{"ShardId":"s"#.to_vec();
        body.extend_from_slice(b"\xff\"}]}");
        assert_eq!(decode(&body, 1).map_err(|e| e.fault), Err(Fault::Outage));
    }

    #[test]
    fn responses_give_failed_entries_in_order_and_distinct_shards() {
        let body = br#"{"FailedRecordCount":1,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"},{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate \"exceeded\""},{"SequenceNumber":"2","ShardId":"shardId-000000000000"},{"SequenceNumber":"3","ShardId":"shardId-000000000001"}]}"#;
        let r = decode(body, 4).expect("decode");
        assert_eq!(
            r.failed,
            vec![(1, "ProvisionedThroughputExceededException".to_string())]
        );
        assert_eq!(
            r.shards,
            vec!["shardId-000000000000", "shardId-000000000001"]
        );
        let escaped =
            br#"{"FailedRecordCount":0,"Records":[{"ShardId":"shardId-00000000000\u0031"}]}"#;
        assert_eq!(
            decode(escaped, 1).expect("escaped").shards,
            vec!["shardId-000000000001"]
        );
        assert_eq!(
            decode(body, 5).map_err(|e| e.fault),
            Err(Fault::Outage),
            "count mismatch"
        );
        assert_eq!(
            decode(b"not json", 1).map_err(|e| e.fault),
            Err(Fault::Outage)
        );
    }

    #[test]
    fn error_answers_are_classified() {
        let e = decode_error(400, None, br#"{"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException","message":"Stream x not found"}"#);
        assert_eq!(e.code(), "ResourceNotFoundException");
        assert_eq!(e.fault, Fault::NotFound);
        let e = decode_error(
            400,
            None,
            br#"{"__type":"ProvisionedThroughputExceededException","message":"slow down"}"#,
        );
        assert_eq!(e.fault, Fault::Throttled);
        let e = decode_error(
            400,
            None,
            br#"{"__type":"InvalidArgumentException","Message":"bad key"}"#,
        );
        assert_eq!(e.fault, Fault::Invalid);
        let e = decode_error(
            400,
            None,
            br#"{"__type":"AccessDeniedException","message":"not authorized to perform kinesis:PutRecords"}"#,
        );
        assert_eq!(e.fault, Fault::AccessDenied);
        assert_eq!(
            decode_error(503, Some("ServiceUnavailable:http://x"), b"").code(),
            "ServiceUnavailable"
        );
        assert_eq!(decode_error(502, None, b"<html>").code(), "HTTP502");
    }
}
