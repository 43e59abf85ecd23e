//! Reading a function's settings from its environment, once per cold start.
//!
//! A function's settings are a plain struct that derives `Deserialize`, one field per
//! environment variable that template.yaml sets, named as the variable is:
//!
//! ```ignore
//! #[derive(Debug, Clone, Deserialize)]
//! #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
//! pub struct Config {
//!     /// Table holding orders.
//!     pub orders_table: String, // ORDERS_TABLE
//! }
//! ```
//!
//! [`crate::runtime::run`] reads it with [`load`] before the first invocation and fails
//! the init (visible as an init error) if a setting is missing, rather than failing every
//! request later. Reading goes through a lookup function, so tests wire a function
//! exactly as `main` does, from the environment the template declares, without touching
//! the process environment.

use serde::de::value::MapDeserializer;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// Where settings come from: the process environment in Lambda, a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, as Lambda sets it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A required setting is absent or empty, or a setting cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("environment variable {0} is required (it is set in template.yaml)")]
pub struct MissingSetting(pub String);

/// Every AWS call a function's code makes, as (IAM action, template resource), declared
/// beside its wiring as `AWS_PERMISSIONS`. The function's role in template.yaml must
/// grant exactly these, plus what Lambda itself needs for logs, traces and the event
/// source; `tests/integration/least_privilege.rs` finds every function in the template,
/// reads its list and fails when the two disagree, so a new SDK call means updating
/// both together.
pub type Permissions = &'static [(&'static str, &'static str)];

/// Reads a settings struct from `lookup`: each field is the variable of the same
/// (serde) name. An empty value counts as missing, since a template that sets a variable
/// to nothing has a bug of its own.
pub fn load<C: DeserializeOwned>(lookup: Lookup) -> Result<C, MissingSetting> {
    C::deserialize(Settings(lookup)).map_err(|SettingsError(name)| MissingSetting(name))
}

/// The environment seen as the struct serde asks for.
struct Settings<'a>(Lookup<'a>);

/// Why reading settings failed: the missing variable's name, or serde's message.
#[derive(Debug)]
struct SettingsError(String);

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

impl de::Error for SettingsError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        SettingsError(message.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        SettingsError(field.to_owned())
    }
}

impl<'de> Deserializer<'de> for Settings<'_> {
    type Error = SettingsError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, SettingsError> {
        Err(SettingsError(
            "settings are a struct with one field per environment variable".into(),
        ))
    }

    /// Serde names the struct's fields; each is looked up, and the ones that are set
    /// (and not blank) are handed over as a map of strings.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SettingsError> {
        let set = fields.iter().filter_map(|field| {
            (self.0)(field)
                .filter(|value| !value.trim().is_empty())
                .map(|value| (*field, value))
        });
        visitor.visit_map(MapDeserializer::new(set))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    struct Config {
        orders_table: String,
        optional_flag: Option<String>,
    }

    #[test]
    fn each_field_is_the_variable_of_its_name() {
        let lookup = |name: &str| (name == "ORDERS_TABLE").then(|| "orders".to_string());
        assert_eq!(
            load::<Config>(&lookup),
            Ok(Config {
                orders_table: "orders".into(),
                optional_flag: None
            })
        );
    }

    #[test]
    fn a_missing_or_empty_setting_is_named() {
        let empty = |name: &str| (name == "ORDERS_TABLE").then(|| " ".to_string());
        assert_eq!(
            load::<Config>(&empty),
            Err(MissingSetting("ORDERS_TABLE".into()))
        );
        assert_eq!(
            load::<Config>(&|_: &str| None),
            Err(MissingSetting("ORDERS_TABLE".into()))
        );
    }
}
