//! Reading template.yaml: resources, parameters, conditions and the `Globals` section,
//! with CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...) turned into
//! their long JSON form so the rest of the crate deals with one representation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use serde_yaml_ng::Value as Yaml;

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
}

/// One resource of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The CloudFormation type, e.g. `AWS::SQS::Queue`.
    pub kind: String,
    /// Its `Properties` (for functions, merged with `Globals.Function`).
    pub properties: Map<String, Value>,
    /// Its `Condition`, if it only exists under one.
    pub condition: Option<String>,
    /// Its `Metadata` (for functions: `BuildMethod`, `BuildProperties.Binary`).
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

/// The serverless function resource type.
pub const FUNCTION: &str = "AWS::Serverless::Function";

impl Template {
    /// The repository's template.yaml.
    pub fn workspace_template() -> PathBuf {
        crate::emulator::workspace_root().join("template.yaml")
    }

    /// Reads and parses a template file.
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            TemplateError::Yaml { source, .. } => TemplateError::Yaml {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let yaml: Yaml = serde_yaml_ng::from_str(text).map_err(|source| TemplateError::Yaml {
            path: PathBuf::from("<text>"),
            source,
        })?;
        let root = to_json(yaml);
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
        let function_globals = section("Globals")
            .get("Function")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut resources = BTreeMap::new();
        for (id, body) in section("Resources") {
            let kind = body
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| TemplateError::Shape(format!("resource {id} has no Type")))?
                .to_owned();
            let mut properties = body
                .get("Properties")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if kind == FUNCTION {
                properties = merge_globals(&function_globals, properties);
            }
            let condition = body
                .get("Condition")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let metadata = body
                .get("Metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            resources.insert(
                id,
                Resource {
                    kind,
                    properties,
                    condition,
                    metadata,
                },
            );
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

/// SAM's Globals semantics: a function's own value wins; maps (like
/// `Environment.Variables`) are merged key by key.
fn merge_globals(globals: &Map<String, Value>, own: Map<String, Value>) -> Map<String, Value> {
    let mut merged = globals.clone();
    for (key, value) in own {
        let combined = match (merged.remove(&key), value) {
            (Some(Value::Object(global)), Value::Object(local)) => {
                Value::Object(merge_globals(&global, local))
            }
            (_, local) => local,
        };
        merged.insert(key, combined);
    }
    merged
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
    fn short_form_tags_become_long_form_and_globals_merge() {
        let template = Template::parse(
            r#"
Parameters:
  Stage: {Type: String, Default: dev}
Globals:
  Function:
    Timeout: 10
    Environment:
      Variables: {RUST_LOG: info, STAGE: !Ref Stage}
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 3
      Environment:
        Variables:
          QUEUE: !GetAtt Queue.Arn
          URL: !Sub "${Queue}/x"
"#,
        )
        .unwrap();
        assert_eq!(template.parameters["Stage"], "dev");
        let function = &template.resources["Fn"];
        assert_eq!(function.properties["Timeout"], 3);
        let vars = &function.properties["Environment"]["Variables"];
        assert_eq!(vars["RUST_LOG"], "info");
        assert_eq!(vars["STAGE"], serde_json::json!({"Ref": "Stage"}));
        assert_eq!(
            vars["QUEUE"],
            serde_json::json!({"Fn::GetAtt": ["Queue", "Arn"]})
        );
        assert_eq!(vars["URL"], serde_json::json!({"Fn::Sub": "${Queue}/x"}));
    }

    #[test]
    fn the_repository_template_parses() {
        let template = Template::load(&Template::workspace_template()).unwrap();
        assert!(template.of_kind(FUNCTION).count() >= 3);
    }
}
