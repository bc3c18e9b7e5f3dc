//! The configuration `docs/configuration.md` shows (its "Every key at once" block), and the
//! example file, are valid as written: every key they name exists (unknown keys are errors) and
//! every value they show is accepted.

use collector::config::{Config, OutputConfig};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
}

/// Variables the snippets use.
fn env(name: &str) -> Option<String> {
    Some(format!("value-of-{name}"))
}

#[test]
fn the_documented_configuration_block_is_valid_as_written() {
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).expect("the page");
    let section = &doc[doc.find("## Every key at once").expect("section")..];
    let start = section.find("```yaml\n").expect("yaml block") + "```yaml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("end")];
    // The block lists every output. Try each alone, then all of them at once.
    let mut value: serde_norway::Value = serde_norway::from_str(block).expect("YAML");
    let outputs = value["output"].as_mapping().expect("output").clone();
    let kinds: Vec<String> = outputs
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .filter(|k| k != "retry")
        .collect();
    assert_eq!(kinds, ["stdout", "file", "aws_kinesis", "s3"]);
    let all = cfg_with(&mut value, &outputs, &kinds);
    assert_eq!(
        all.outputs.iter().map(|o| o.name()).collect::<Vec<_>>(),
        ["aws_kinesis", "s3", "stdout", "file"]
    );
    let Some(OutputConfig::S3(s3)) = all.outputs.get(1) else {
        panic!("s3")
    };
    assert_eq!(
        (s3.bucket.as_str(), s3.prefix.as_str()),
        ("logs-archive", "edgelog/")
    );
    for keep in &kinds {
        let cfg = cfg_with(&mut value, &outputs, std::slice::from_ref(keep));
        if keep == "aws_kinesis" {
            let OutputConfig::AwsKinesis(k) = &cfg.outputs[0] else {
                panic!("kinesis")
            };
            assert_eq!(k.stream_name, "logs");
        }
    }
}

/// The configuration with only the outputs `keep` of `outputs`.
fn cfg_with(
    value: &mut serde_norway::Value,
    outputs: &serde_norway::Mapping,
    keep: &[String],
) -> Config {
    {
        let kinds = ["stdout", "file", "aws_kinesis", "s3"];
        let mut out = outputs.clone();
        for other in kinds.iter().filter(|k| !keep.iter().any(|x| x == *k)) {
            out.remove(*other);
        }
        value["output"] = serde_norway::Value::Mapping(out);
    }
    let text = serde_norway::to_string(value).expect("yaml");
    Config::from_yaml(&text, &env)
        .unwrap_or_else(|e| panic!("docs/configuration.md with outputs {keep:?}: {e}"))
}

#[test]
fn the_example_file_is_valid() {
    let text =
        std::fs::read_to_string(root().join("collector/collector.example.yaml")).expect("example");
    Config::from_yaml(&text, &env).unwrap_or_else(|e| panic!("collector.example.yaml: {e}"));
}
