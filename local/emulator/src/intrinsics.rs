//! Resolving CloudFormation intrinsic functions to local values.
//!
//! `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::If` (with the template's
//! `Conditions`) and the pseudo parameters. A reference to something not (yet) known is an
//! error naming it, which provisioning uses to order resources by their dependencies.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{ACCOUNT_ID, REGION};

/// A value could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// `Ref`/`GetAtt`/`Sub` named something unknown (or not provisioned yet).
    #[error("unknown reference {0}")]
    Unknown(String),
    /// An intrinsic with arguments of the wrong shape.
    #[error("malformed intrinsic {0}")]
    Malformed(String),
}

/// What names resolve to: every resource's `Ref` value and attributes, parameters and
/// conditions.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// `Ref` value of each logical id (parameters included).
    pub refs: BTreeMap<String, Value>,
    /// `Fn::GetAtt` values, by (logical id, attribute).
    pub attributes: BTreeMap<(String, String), Value>,
    /// Conditions, unevaluated.
    pub conditions: BTreeMap<String, Value>,
}

/// A value `AWS::NoValue` resolved to: dropped from its enclosing object or array.
fn is_no_value(value: &Value) -> bool {
    value.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue")
}

impl Names {
    /// Records a resource's `Ref` value.
    pub fn set_ref(&mut self, id: &str, value: impl Into<Value>) {
        self.refs.insert(id.to_owned(), value.into());
    }

    /// Records a resource attribute.
    pub fn set_attribute(&mut self, id: &str, attribute: &str, value: impl Into<Value>) {
        self.attributes
            .insert((id.to_owned(), attribute.to_owned()), value.into());
    }

    fn reference(&self, name: &str) -> Result<Value, ResolveError> {
        match name {
            "AWS::Region" => Ok(REGION.into()),
            "AWS::AccountId" => Ok(ACCOUNT_ID.into()),
            "AWS::Partition" => Ok("aws".into()),
            "AWS::URLSuffix" => Ok("amazonaws.com".into()),
            "AWS::StackName" => Ok("local".into()),
            "AWS::StackId" => Ok(format!(
                "arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/local/local"
            )
            .into()),
            _ => self
                .refs
                .get(name)
                .cloned()
                .ok_or_else(|| ResolveError::Unknown(name.to_owned())),
        }
    }

    fn attribute(&self, id: &str, attribute: &str) -> Result<Value, ResolveError> {
        self.attributes
            .get(&(id.to_owned(), attribute.to_owned()))
            .cloned()
            .ok_or_else(|| ResolveError::Unknown(format!("{id}.{attribute}")))
    }

    /// Evaluates a named condition.
    pub fn condition(&self, name: &str) -> Result<bool, ResolveError> {
        let body = self
            .conditions
            .get(name)
            .ok_or_else(|| ResolveError::Unknown(format!("condition {name}")))?;
        self.truth(body)
    }

    fn truth(&self, value: &Value) -> Result<bool, ResolveError> {
        let Some((function, args)) = single_key(value) else {
            return value
                .as_bool()
                .ok_or_else(|| ResolveError::Malformed(value.to_string()));
        };
        let list = || {
            args.as_array()
                .ok_or_else(|| ResolveError::Malformed(function.to_owned()))
        };
        match function {
            "Condition" => self.condition(args.as_str().unwrap_or_default()),
            "Fn::Equals" => {
                let items = list()?;
                match items.as_slice() {
                    [a, b] => Ok(self.resolve(a)? == self.resolve(b)?),
                    _ => Err(ResolveError::Malformed("Fn::Equals".into())),
                }
            }
            "Fn::Not" => Ok(!self.truth(list()?.first().unwrap_or(&Value::Null))?),
            "Fn::And" => list()?
                .iter()
                .try_fold(true, |acc, c| Ok(acc && self.truth(c)?)),
            "Fn::Or" => list()?
                .iter()
                .try_fold(false, |acc, c| Ok(acc || self.truth(c)?)),
            other => Err(ResolveError::Malformed(other.to_owned())),
        }
    }

    /// Resolves every intrinsic inside `value`.
    pub fn resolve(&self, value: &Value) -> Result<Value, ResolveError> {
        match value {
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .filter(|v| !is_no_value(v))
                    .map(|v| self.resolve(v))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Object(map) => match single_key(value) {
                Some((function, args)) if function == "Ref" || function.starts_with("Fn::") => {
                    self.intrinsic(function, args)
                }
                _ => {
                    let mut out = Map::new();
                    for (key, item) in map {
                        if !is_no_value(item) {
                            out.insert(key.clone(), self.resolve(item)?);
                        }
                    }
                    Ok(Value::Object(out))
                }
            },
            other => Ok(other.clone()),
        }
    }

    fn intrinsic(&self, function: &str, args: &Value) -> Result<Value, ResolveError> {
        let malformed = || ResolveError::Malformed(format!("{function} {args}"));
        match function {
            "Ref" => self.reference(args.as_str().ok_or_else(malformed)?),
            "Fn::GetAtt" => {
                let (id, attribute) = match args {
                    Value::Array(parts) => match parts.as_slice() {
                        [Value::String(id), Value::String(attribute)] => {
                            (id.as_str(), attribute.as_str())
                        }
                        _ => return Err(malformed()),
                    },
                    Value::String(dotted) => dotted.split_once('.').ok_or_else(malformed)?,
                    _ => return Err(malformed()),
                };
                self.attribute(id, attribute)
            }
            "Fn::Sub" => {
                let (text, variables) = match args {
                    Value::String(text) => (text.as_str(), Map::new()),
                    Value::Array(parts) => match parts.as_slice() {
                        [Value::String(text), Value::Object(vars)] => (text.as_str(), vars.clone()),
                        _ => return Err(malformed()),
                    },
                    _ => return Err(malformed()),
                };
                self.substitute(text, &variables).map(Value::String)
            }
            "Fn::Join" => match args.as_array().map(Vec::as_slice) {
                Some([Value::String(separator), list]) => {
                    let resolved = self.resolve(list)?;
                    let parts: Vec<String> = resolved
                        .as_array()
                        .ok_or_else(malformed)?
                        .iter()
                        .map(scalar_text)
                        .collect();
                    Ok(Value::String(parts.join(separator)))
                }
                _ => Err(malformed()),
            },
            "Fn::If" => match args.as_array().map(Vec::as_slice) {
                Some([Value::String(condition), yes, no]) => {
                    if self.condition(condition)? {
                        self.resolve(yes)
                    } else {
                        self.resolve(no)
                    }
                }
                _ => Err(malformed()),
            },
            "Fn::Select" => match args.as_array().map(Vec::as_slice) {
                Some([index, list]) => {
                    let index = scalar_text(&self.resolve(index)?)
                        .parse::<usize>()
                        .map_err(|_| malformed())?;
                    self.resolve(list)?
                        .as_array()
                        .and_then(|items| items.get(index).cloned())
                        .ok_or_else(malformed)
                }
                _ => Err(malformed()),
            },
            "Fn::ToJsonString" => Ok(Value::String(self.resolve(args)?.to_string())),
            other => Err(ResolveError::Malformed(format!("unsupported {other}"))),
        }
    }

    fn substitute(
        &self,
        text: &str,
        variables: &Map<String, Value>,
    ) -> Result<String, ResolveError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| ResolveError::Malformed(format!("Fn::Sub {text}")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&scalar_text(&self.resolve(value)?));
            } else if let Some((id, attribute)) =
                name.split_once('.').filter(|_| !name.starts_with("AWS::"))
            {
                out.push_str(&scalar_text(&self.attribute(id, attribute)?));
            } else {
                out.push_str(&scalar_text(&self.reference(name)?));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The object's only key and its value, if it has exactly one.
fn single_key(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// A scalar as CloudFormation would splice it into a string.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_attributes_and_subs_resolve() {
        let mut names = Names::default();
        names.set_ref("Queue", "http://q");
        names.set_attribute("Queue", "Arn", "arn:q");
        names.set_ref("Stage", "prod");
        names.conditions.insert(
            "IsProd".into(),
            json!({"Fn::Equals": [{"Ref": "Stage"}, "prod"]}),
        );
        let value = json!({
            "a": {"Ref": "Queue"},
            "b": {"Fn::GetAtt": ["Queue", "Arn"]},
            "c": {"Fn::Sub": "${AWS::Region}:${Queue.Arn}:${!Keep}"},
            "d": {"Fn::If": ["IsProd", 1, 2]},
            "e": {"Ref": "AWS::NoValue"}
        });
        assert_eq!(
            names.resolve(&value).unwrap(),
            json!({"a": "http://q", "b": "arn:q", "c": "us-east-1:arn:q:${Keep}", "d": 1})
        );
        assert_eq!(
            names.resolve(&json!({"Ref": "Missing"})),
            Err(ResolveError::Unknown("Missing".into()))
        );
    }
}
