//! Reading a function's configuration from its environment, once per cold start.
//!
//! The template sets each function's environment; `main` reads it before the first
//! invocation and fails the init (visible as an init error) if anything is missing,
//! rather than failing every request later. Reading goes through a lookup function so
//! tests can wire a function exactly as `main` does, from the environment the template
//! declares, without touching the process environment.

/// Where settings come from: the process environment in Lambda, a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, as Lambda sets it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A required setting is absent or empty.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("environment variable {0} is required (it is set in template.yaml)")]
pub struct MissingSetting(pub &'static str);

/// Reads a required, non-empty setting.
pub fn required(lookup: Lookup, name: &'static str) -> Result<String, MissingSetting> {
    lookup(name)
        .filter(|value| !value.trim().is_empty())
        .ok_or(MissingSetting(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_settings_count_as_missing() {
        let lookup = |name: &str| (name == "EMPTY").then(|| " ".to_string());
        assert_eq!(required(&lookup, "EMPTY"), Err(MissingSetting("EMPTY")));
        assert_eq!(required(&lookup, "ABSENT"), Err(MissingSetting("ABSENT")));
    }
}
