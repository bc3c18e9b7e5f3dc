//! Validation of an AWS output's `credentials` block: static keys, a role to assume, or both.

use super::error::{invalid, ConfigError};
use super::limits::*;
use super::model::{parse_duration, AccessKeys, AssumeRole, Credentials};
use super::schema::RawCredentials;

/// `key`: where the block sits (`output.aws_kinesis.credentials`).
pub fn credentials(key: &str, c: RawCredentials) -> Result<Credentials, ConfigError> {
    let keys = match (c.access_key_id, c.secret_access_key) {
        (Some(access_key_id), Some(secret_access_key)) => Some(AccessKeys {
            access_key_id,
            secret_access_key,
            session_token: c.session_token,
        }),
        (None, None) => {
            if c.session_token.is_some() {
                return Err(invalid(
                    &format!("{key}.session_token"),
                    "needs access_key_id and secret_access_key",
                ));
            }
            None
        }
        (Some(_), None) => {
            return Err(invalid(
                &format!("{key}.secret_access_key"),
                "missing: access_key_id is given",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                &format!("{key}.access_key_id"),
                "missing: secret_access_key is given",
            ))
        }
    };
    let role_keys = [
        ("external_id", c.external_id.is_some()),
        ("session_name", c.session_name.is_some()),
        ("session_duration", c.session_duration.is_some()),
        ("sts_region", c.sts_region.is_some()),
        ("sts_endpoint_url", c.sts_endpoint_url.is_some()),
    ];
    let Some(role_arn) = c.role_arn else {
        if let Some((name, _)) = role_keys.iter().find(|(_, given)| *given) {
            return Err(invalid(&format!("{key}.{name}"), "needs role_arn"));
        }
        if keys.is_none() {
            return Err(invalid(
                key,
                "give access_key_id and secret_access_key, or role_arn, or leave the block out to use the SDK credential chain",
            ));
        }
        return Ok(Credentials {
            keys,
            assume_role: None,
        });
    };
    let role_arn = role_arn.trim().to_string();
    if !is_role_arn(&role_arn) {
        return Err(invalid(
            &format!("{key}.role_arn"),
            format!("{role_arn:?} is not a role ARN (arn:aws:iam::123456789012:role/name)"),
        ));
    }
    if let Some(id) = &c.external_id {
        check_chars(&format!("{key}.external_id"), id, 2, 1224, "+=,.@:/-")?;
    }
    let session_name = c
        .session_name
        .unwrap_or_else(|| DEFAULT_ROLE_SESSION_NAME.to_string());
    check_chars(
        &format!("{key}.session_name"),
        &session_name,
        2,
        64,
        "+=,.@-",
    )?;
    let duration_key = format!("{key}.session_duration");
    let session_duration = parse_duration(
        c.session_duration
            .as_deref()
            .unwrap_or(DEFAULT_ROLE_SESSION_DURATION),
    )
    .map_err(|e| invalid(&duration_key, e))?;
    if !(MIN_ROLE_SESSION..=MAX_ROLE_SESSION).contains(&session_duration) {
        return Err(invalid(&duration_key, "must be from 15m to 12h"));
    }
    if let Some(url) = &c.sts_endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                &format!("{key}.sts_endpoint_url"),
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
    }
    Ok(Credentials {
        keys,
        assume_role: Some(AssumeRole {
            role_arn,
            external_id: c.external_id,
            session_name,
            session_duration,
            sts_region: c.sts_region,
            sts_endpoint_url: c.sts_endpoint_url,
        }),
    })
}

/// `arn:<partition>:iam::<12 digits>:role/<path/name>`.
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty())
    )
}

/// STS's rule for session names and external ids: word characters and `extra`.
fn check_chars(
    key: &str,
    value: &str,
    min: usize,
    max: usize,
    extra: &str,
) -> Result<(), ConfigError> {
    if value.len() < min || value.len() > max {
        return Err(invalid(
            key,
            format!("must be {min} to {max} characters long"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || *ch == '_' || extra.contains(*ch)))
    {
        return Err(invalid(
            key,
            format!("{bad:?} is not allowed (letters, digits and _{extra})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> RawCredentials {
        serde_norway::from_str(yaml).expect("parses")
    }

    fn err(yaml: &str) -> String {
        credentials("c", raw(yaml))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn keys_role_or_both() {
        let k = credentials("c", raw("{access_key_id: a, secret_access_key: b}")).expect("ok");
        assert!(k.keys.is_some() && k.assume_role.is_none());
        let r =
            credentials("c", raw("{role_arn: 'arn:aws:iam::123456789012:role/w'}")).expect("ok");
        let role = r.assume_role.expect("role");
        assert!(r.keys.is_none());
        assert_eq!(role.session_name, DEFAULT_ROLE_SESSION_NAME);
        assert_eq!(role.session_duration.as_secs(), 3600);
        let both = credentials(
            "c",
            raw("{access_key_id: a, secret_access_key: b, role_arn: 'arn:aws-cn:iam::123456789012:role/path/w', external_id: 'x-1', session_name: s.n, session_duration: 12h, sts_region: eu-west-1, sts_endpoint_url: 'http://127.0.0.1:1'}"),
        )
        .expect("ok");
        let role = both.assume_role.expect("role");
        assert_eq!(role.external_id.as_deref(), Some("x-1"));
        assert_eq!(role.sts_region.as_deref(), Some("eu-west-1"));
        assert!(both.keys.is_some());
    }

    /// The example of a role in `docs/operations.md` is a valid configuration, meaning what it
    /// says.
    #[test]
    fn the_documented_role_example_is_valid() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/operations.md"
        ))
        .expect("docs/operations.md");
        let after = doc.split_once("### 1. AWS access").expect("the section").1;
        let block = after
            .split_once("```yaml\n")
            .and_then(|(_, b)| b.split_once("```"))
            .expect("a yaml block")
            .0;
        let cfg = crate::config::Config::from_yaml(
            &format!("fastly: {{service_ids: [\"*\"]}}\n{block}"),
            &|_| None,
        )
        .expect("valid");
        let crate::config::OutputConfig::AwsKinesis(k) = &cfg.outputs[0] else {
            panic!("kinesis")
        };
        let c = k.credentials.as_ref().expect("credentials");
        assert!(c.keys.is_none(), "the SDK chain assumes the role");
        let role = c.assume_role.as_ref().expect("role");
        assert_eq!(
            role.role_arn,
            "arn:aws:iam::111122223333:role/edgelog-writer"
        );
        assert_eq!(role.external_id.as_deref(), Some("edgelog-7c1f3b"));
        assert_eq!(role.session_name, DEFAULT_ROLE_SESSION_NAME);
        assert_eq!(role.session_duration.as_secs(), 3600);
        assert_eq!(role.sts_region.as_deref(), Some("us-east-1"));
        assert!(
            doc.contains("\"sts:ExternalId\": \"edgelog-7c1f3b\""),
            "the trust policy's id is the same"
        );
    }

    #[test]
    fn every_mistake_names_its_key() {
        for (yaml, key, why) in [
            ("{}", "c:", "or role_arn"),
            ("{access_key_id: a}", "c.secret_access_key", "missing"),
            ("{secret_access_key: b}", "c.access_key_id", "missing"),
            (
                "{session_token: t}",
                "c.session_token",
                "needs access_key_id",
            ),
            (
                "{access_key_id: a, secret_access_key: b, external_id: xx}",
                "c.external_id",
                "needs role_arn",
            ),
            (
                "{sts_endpoint_url: 'http://x'}",
                "c.sts_endpoint_url",
                "needs role_arn",
            ),
            (
                "{role_arn: 'arn:aws:iam::123:role/w'}",
                "c.role_arn",
                "not a role ARN",
            ),
            (
                "{role_arn: 'arn:aws:iam::123456789012:user/w'}",
                "c.role_arn",
                "not a role ARN",
            ),
            (
                "{role_arn: 'arn:aws:s3:::bucket'}",
                "c.role_arn",
                "not a role ARN",
            ),
            (
                "{role_arn: 'arn:aws:iam::123456789012:role/w', external_id: 'a b'}",
                "c.external_id",
                "' ' is not allowed",
            ),
            (
                "{role_arn: 'arn:aws:iam::123456789012:role/w', external_id: 'a'}",
                "c.external_id",
                "2 to 1224",
            ),
            (
                "{role_arn: 'arn:aws:iam::123456789012:role/w', session_name: 'a/b'}",
                "c.session_name",
                "'/' is not allowed",
            ),
            (
                "{role_arn: 'arn:aws:iam::123456789012:role/w', session_duration: 5m}",
                "c.session_duration",
                "15m to 12h",
            ),
            (
                "{role_arn: 'arn:aws:iam::123456789012:role/w', session_duration: 13h}",
                "c.session_duration",
                "15m to 12h",
            ),
            (
                "{role_arn: 'arn:aws:iam::123456789012:role/w', session_duration: soon}",
                "c.session_duration",
                "",
            ),
            (
                "{role_arn: 'arn:aws:iam::123456789012:role/w', sts_endpoint_url: 'sts.local'}",
                "c.sts_endpoint_url",
                "not an http",
            ),
        ] {
            let e = err(yaml);
            assert!(e.contains(key) && e.contains(why), "{yaml}: {e}");
        }
    }
}
