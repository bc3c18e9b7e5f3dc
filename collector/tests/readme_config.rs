//! The configuration the README shows, and the example file, are valid as written: every key
//! they name exists (unknown keys are errors) and every value they show is accepted.

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
fn the_readme_configuration_block_is_valid_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let section = &readme[readme.find("### Configuration").expect("section")..];
    let start = section.find("```yaml\n").expect("yaml block") + "```yaml\n".len();
    let block = &section[start..start + section[start..].find("```").expect("end")];
    // The block lists every output; a file has exactly one. Try each in turn.
    let mut value: serde_norway::Value = serde_norway::from_str(block).expect("YAML");
    let outputs = value["output"].as_mapping().expect("output").clone();
    let kinds: Vec<String> = outputs
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .filter(|k| k != "retry")
        .collect();
    assert_eq!(kinds, ["stdout", "file", "aws_kinesis"]);
    for keep in &kinds {
        let mut out = outputs.clone();
        for other in kinds.iter().filter(|k| *k != keep) {
            out.remove(other.as_str());
        }
        value["output"] = serde_norway::Value::Mapping(out);
        let text = serde_norway::to_string(&value).expect("yaml");
        let cfg = Config::from_yaml(&text, &env)
            .unwrap_or_else(|e| panic!("README configuration with output {keep}: {e}"));
        if keep == "aws_kinesis" {
            let OutputConfig::AwsKinesis(k) = &cfg.outputs[0] else {
                panic!("kinesis")
            };
            assert_eq!(k.stream_name, "logs");
        }
    }
}

#[test]
fn the_example_file_is_valid() {
    let text =
        std::fs::read_to_string(root().join("collector/collector.example.yaml")).expect("example");
    Config::from_yaml(&text, &env).unwrap_or_else(|e| panic!("collector.example.yaml: {e}"));
}
