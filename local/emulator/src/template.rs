//! Reading template.yaml, two ways.
//!
//! - [`Template::translate`]: the template as CloudFormation deploys it, translated by
//!   SAM's own translator (`local/tools/sam_to_cfn.py`). Everything the local cloud runs
//!   (provisioning, the functions' environments, the event source mappings, the API's
//!   routes and edge) reads this, so SAM's rules (Globals, events, aliases, permissions)
//!   hold locally as they hold on AWS, with nothing re-implemented here.
//! - [`Template::load`]: the SAM source as written, for checks of what its author wrote
//!   (a function's `Events`, its `Metadata`, its role's policies).
//!
//! Either way CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...) become
//! their long JSON form, so the rest of the crate deals with one representation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;
use sha2::{Digest, Sha256};

use crate::{project_python, workspace_root};

/// Reading the template failed.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The template path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{path} is not valid YAML: {source}")]
    Yaml {
        /// The template path.
        path: PathBuf,
        /// Why.
        source: serde_yaml_ng::Error,
    },
    /// The YAML is not a template of the expected shape.
    #[error("template: {0}")]
    Shape(String),
    /// SAM's translator refused the template, or could not be run.
    #[error("SAM cannot translate {path}: {message}")]
    Translate {
        /// The template path.
        path: PathBuf,
        /// The translator's own words (or why it did not run).
        message: String,
    },
}

/// One resource of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The CloudFormation type, e.g. `AWS::SQS::Queue`.
    pub kind: String,
    /// Its `Properties`, as written (in a translated template: as SAM wrote them, Globals
    /// applied).
    pub properties: Map<String, Value>,
    /// Its `Condition`, if it only exists under one.
    pub condition: Option<String>,
    /// Its `Metadata` (for functions: `BuildMethod`, `BuildProperties.Binary`; SAM's
    /// translator keeps it on the `AWS::Lambda::Function` it makes).
    pub metadata: Map<String, Value>,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Parameter defaults by name.
    pub parameters: BTreeMap<String, Value>,
    /// Conditions by name, unevaluated.
    pub conditions: BTreeMap<String, Value>,
    /// Resources by logical id.
    pub resources: BTreeMap<String, Resource>,
}

/// A function as written in the SAM source.
pub const FUNCTION: &str = "AWS::Serverless::Function";

/// A function as SAM's translator makes it, under the same logical id: what a
/// translated template holds, with Globals applied.
pub const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";

impl Template {
    /// The repository's template.yaml.
    pub fn workspace_template() -> PathBuf {
        workspace_root().join("template.yaml")
    }

    /// Reads and parses a template file as written (the SAM source: no Globals applied,
    /// no events translated).
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        let text = read(path)?;
        Self::parse(&text).map_err(|e| match e {
            TemplateError::Yaml { source, .. } => TemplateError::Yaml {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses template text as written.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Self::from_json(&yaml_to_json(text)?)
    }

    /// The template at `path` as CloudFormation deploys it: translated by SAM's own
    /// translator, run with the project's Python ([`project_python`]). A translation is kept in
    /// `target/sam/` under a hash of everything it depends on (the template, the files
    /// it includes, the translator script and the pinned requirements), so each distinct
    /// template is translated once (about 2 s) however many tests start a host on it.
    pub fn translate(path: &Path) -> Result<Template, TemplateError> {
        let text = read(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let root = workspace_root();
        let script = root.join("local/tools/sam_to_cfn.py");
        let mut inputs = vec![text.clone()];
        for included in included_files(&yaml_to_json(&text)?) {
            inputs.push(read(&dir.join(included))?);
        }
        for input in [&script, &root.join("local/requirements.txt")] {
            inputs.push(read(input)?);
        }
        let key = short_hash(&inputs.iter().map(String::as_bytes).collect::<Vec<_>>());
        let translated = cache_dir().join(format!("{key}.json"));
        if !translated.exists() {
            let failed = |message: String| TemplateError::Translate {
                path: path.to_path_buf(),
                message,
            };
            let python = project_python();
            let output = Command::new(&python)
                .arg(&script)
                .arg(path)
                .arg("/dev/stdout")
                .output()
                .map_err(|e| failed(format!("{}: {e} (run `make venv`)", python.display())))?;
            if !output.status.success() {
                return Err(failed(
                    String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                ));
            }
            write_whole(&translated, &output.stdout).map_err(|e| failed(e.to_string()))?;
        }
        let json = read(&translated)?;
        let root: Value = serde_json::from_str(&json).map_err(|e| TemplateError::Translate {
            path: path.to_path_buf(),
            message: format!("{}: {e}", translated.display()),
        })?;
        Self::from_json(&root)
    }

    /// [`Template::translate`] for template text (a test's own template): written to
    /// `target/sam/` first, so files it includes are found relative to that folder.
    pub fn translate_text(text: &str) -> Result<Template, TemplateError> {
        let path = cache_dir().join(format!("{}.yaml", short_hash(&[text.as_bytes()])));
        if !path.exists() {
            write_whole(&path, text.as_bytes()).map_err(|source| TemplateError::Read {
                path: path.clone(),
                source,
            })?;
        }
        Self::translate(&path)
    }

    fn from_json(root: &Value) -> Result<Template, TemplateError> {
        let section = |name: &str| -> Map<String, Value> {
            root.get(name)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let parameters = section("Parameters")
            .into_iter()
            .filter_map(|(name, spec)| spec.get("Default").cloned().map(|d| (name, d)))
            .collect();
        let conditions = section("Conditions").into_iter().collect();
        let mut resources = BTreeMap::new();
        for (id, body) in section("Resources") {
            let kind = body
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| TemplateError::Shape(format!("resource {id} has no Type")))?
                .to_owned();
            let object = |name: &str| {
                body.get(name)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            let resource = Resource {
                kind,
                properties: object("Properties"),
                condition: body
                    .get("Condition")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                metadata: object("Metadata"),
            };
            resources.insert(id, resource);
        }
        Ok(Template {
            parameters,
            conditions,
            resources,
        })
    }

    /// The resources of one type, by logical id.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Resource)> {
        self.resources
            .iter()
            .filter(move |(_, r)| r.kind == kind)
            .map(|(id, r)| (id.as_str(), r))
    }
}

fn read(path: &Path) -> Result<String, TemplateError> {
    std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Where translations are kept: the workspace's one target directory.
fn cache_dir() -> PathBuf {
    workspace_root().join("target/sam")
}

/// A file name for content: 24 hex digits of its SHA-256, plenty to tell templates apart.
fn short_hash(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
        hash.update([0]);
    }
    hash.finalize()
        .iter()
        .take(12)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Writes a file aside and renames it into place, so tests writing the same file at once
/// never read half of it.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

fn yaml_to_json(text: &str) -> Result<Value, TemplateError> {
    let yaml: Yaml = serde_yaml_ng::from_str(text).map_err(|source| TemplateError::Yaml {
        path: PathBuf::from("<text>"),
        source,
    })?;
    Ok(to_json(yaml))
}

/// The local files a template includes (`Fn::Transform: AWS::Include` with a relative
/// `Location`), which its translation depends on.
fn included_files(node: &Value) -> Vec<String> {
    let mut found = Vec::new();
    match node {
        Value::Object(map) => {
            let include = map
                .get("Fn::Transform")
                .filter(|t| t["Name"] == "AWS::Include");
            let location = include.and_then(|t| t["Parameters"]["Location"].as_str());
            // An S3 location is uploaded already; the translator refuses it offline.
            if let Some(location) = location.filter(|l| !l.contains("://")) {
                found.push(location.to_owned());
            }
            map.values().for_each(|v| found.extend(included_files(v)));
        }
        Value::Array(items) => items.iter().for_each(|v| found.extend(included_files(v))),
        _ => {}
    }
    found
}

/// YAML to JSON, turning short-form intrinsic tags into their long form.
fn to_json(yaml: Yaml) -> Value {
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map(Value::from).unwrap_or(Value::Null)
            }
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            let (key, value) = match name {
                "Ref" => ("Ref".to_owned(), value),
                "Condition" => ("Condition".to_owned(), value),
                "GetAtt" => {
                    let value = match value {
                        Value::String(s) => match s.split_once('.') {
                            Some((resource, attribute)) => {
                                Value::from(vec![resource.to_owned(), attribute.to_owned()])
                            }
                            None => Value::String(s),
                        },
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), value)
                }
                other => (format!("Fn::{other}"), value),
            };
            Value::Object(Map::from_iter([(key, value)]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_tags_become_long_form() {
        let template = Template::parse(
            r#"
Parameters:
  Stage: {Type: String, Default: dev}
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          STAGE: !Ref Stage
          QUEUE: !GetAtt Queue.Arn
          URL: !Sub "${Queue}/x"
"#,
        )
        .unwrap();
        assert_eq!(template.parameters["Stage"], "dev");
        let vars = &template.resources["Fn"].properties["Environment"]["Variables"];
        assert_eq!(vars["STAGE"], serde_json::json!({"Ref": "Stage"}));
        assert_eq!(
            vars["QUEUE"],
            serde_json::json!({"Fn::GetAtt": ["Queue", "Arn"]})
        );
        assert_eq!(vars["URL"], serde_json::json!({"Fn::Sub": "${Queue}/x"}));
    }

    /// A translated function keeps its logical id and its Metadata (where the local
    /// host finds its binary). SAM's Globals rules are shown on a provisioned stack in
    /// local/emulator/tests/provisioning.rs.
    #[test]
    fn a_translated_function_keeps_its_id_and_metadata() {
        let template = Template::translate_text(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: fn}}\n    Properties: {CodeUri: ., Runtime: provided.al2023, Handler: bootstrap}\n",
        )
        .unwrap();
        let function = &template.resources["Fn"];
        assert_eq!(function.kind, LAMBDA_FUNCTION);
        assert_eq!(function.metadata["BuildProperties"]["Binary"], "fn");
    }

    #[test]
    fn a_template_sam_refuses_is_an_error_in_its_words() {
        let error = Template::translate_text(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: .}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("[Fn]") && error.contains("Runtime"),
            "{error}"
        );
    }

    #[test]
    fn the_repository_template_parses_and_translates() {
        let path = Template::workspace_template();
        assert!(Template::load(&path).unwrap().of_kind(FUNCTION).count() >= 3);
        let translated = Template::translate(&path).unwrap();
        assert!(translated.of_kind(LAMBDA_FUNCTION).count() >= 3);
        assert!(translated.of_kind(FUNCTION).next().is_none());
    }
}
