//! What keeps a fork healthy on its own: every workflow action on a runtime GitHub still
//! runs, and Dependabot watching all three ecosystems the project pins.

use std::collections::{BTreeMap, BTreeSet};

use emulator::workspace_root;
use serde_yaml_ng::Value;

/// `action_runtimes.txt`: action -> the first major version on Node 24 (`None`: no Node).
fn first_node24_majors() -> BTreeMap<String, Option<u32>> {
    let path = workspace_root().join("tests/integration/action_runtimes.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut fields = line.split_whitespace();
            let action = fields.next().unwrap().to_owned();
            let runtime = fields.next().unwrap();
            let major =
                (runtime != "shell").then(|| runtime.trim_start_matches('v').parse().unwrap());
            (action, major)
        })
        .collect()
}

/// Every `uses: owner/repo@vN` in the workflows, as (file, action, major).
fn actions_used() -> Vec<(String, String, u32)> {
    let dir = workspace_root().join(".github/workflows");
    let mut used = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for line in text.lines() {
            let Some((_, uses)) = line.split_once("uses:") else {
                continue;
            };
            let (action, version) = uses.trim().split_once('@').unwrap_or((uses.trim(), ""));
            let major = version
                .trim_start_matches('v')
                .split('.')
                .next()
                .unwrap_or_default();
            let major = major.parse().unwrap_or_else(|_| {
                panic!("{file}: {action}@{version} is not pinned to a major version")
            });
            used.push((file.clone(), action.to_owned(), major));
        }
    }
    used
}

/// Which actions in `used` run on a retired runtime or are missing from the list.
fn outdated(used: &[(String, String, u32)], list: &BTreeMap<String, Option<u32>>) -> Vec<String> {
    used.iter()
        .filter_map(|(file, action, major)| match list.get(action) {
            None => Some(format!("{file}: {action} is not in action_runtimes.txt")),
            Some(Some(first)) if major < first => {
                Some(format!("{file}: {action}@v{major} runs on Node 20 or older (v{first} is the first on Node 24)"))
            }
            Some(_) => None,
        })
        .collect()
}

#[test]
fn every_workflow_action_runs_on_a_runtime_github_still_supports() {
    let used = actions_used();
    assert!(
        used.len() >= 5,
        "the workflows' actions were found: {used:?}"
    );
    let problems = outdated(&used, &first_node24_majors());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn an_action_on_node_20_or_missing_from_the_list_fails_the_check() {
    let list = first_node24_majors();
    let old = [("ci.yml".to_owned(), "actions/checkout".to_owned(), 4)];
    assert_eq!(outdated(&old, &list).len(), 1, "checkout@v4 is Node 20");
    let unknown = [("ci.yml".to_owned(), "someone/new-action".to_owned(), 9)];
    assert_eq!(
        outdated(&unknown, &list).len(),
        1,
        "an action nobody looked at"
    );
}

#[test]
fn dependabot_covers_the_crates_the_python_tools_and_the_actions() {
    let path = workspace_root().join(".github/dependabot.yml");
    let config: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let watched: BTreeSet<(String, String)> = config["updates"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|u| {
            let field = |name: &str| u[name].as_str().unwrap_or_default().to_owned();
            (field("package-ecosystem"), field("directory"))
        })
        .collect();
    for (ecosystem, directory) in [("cargo", "/"), ("pip", "/local"), ("github-actions", "/")] {
        assert!(
            watched.contains(&(ecosystem.to_owned(), directory.to_owned())),
            "dependabot.yml watches {ecosystem} in {directory}: {watched:?}"
        );
    }
    // The pip entry's directory holds the pinned requirements files it is there for.
    assert!(workspace_root().join("local/requirements.txt").exists());
}
