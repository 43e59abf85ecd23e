//! The workshop (`docs/workshop/`) stays true to the code.
//!
//! A lab that does not work as written wastes a room full of people's time, so this
//! module checks what each lab promises: every lab has its sections and a checkpoint,
//! every checkpoint is a Makefile target whose tests exist, every lab that changes code
//! ships a solution (`docs/workshop/solutions/`) that passes its checkpoint, and every
//! deliberate break a lab asks for makes its checkpoint fail. The solutions are applied
//! in a copy of the repository, so nothing here touches the working tree.
//!
//! It also holds the two template rules labs 6 and 8 are about (queue visibility
//! against function timeouts, canary deployments behind an errors alarm): they are
//! project rules as much as lab checks, and the labs run them by name.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};

use emulator::template::{FUNCTION, LAMBDA_FUNCTION, Resource, Template};
use emulator::workspace_root;
use integration_tests::nested;
use serde_json::Value;

// ---------------------------------------------------------------- template rules (labs 6, 8)

/// A number property (templates write them as numbers or strings), or a default.
fn number(resource: &Resource, property: &str, default: u64) -> u64 {
    match resource.properties.get(property) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(default),
        Some(Value::String(s)) => s.parse().unwrap_or(default),
        _ => default,
    }
}

/// The logical id an intrinsic names: `!Ref X` or `!GetAtt X.Arn`.
fn referenced(value: &Value) -> Option<String> {
    if let Some(id) = value.get("Ref").and_then(Value::as_str) {
        return Some(id.to_owned());
    }
    match value.get("Fn::GetAtt")? {
        Value::Array(parts) => parts.first()?.as_str().map(str::to_owned),
        Value::String(path) => path.split('.').next().map(str::to_owned),
        _ => None,
    }
}

/// template.yaml as written: the functions' `Events` and `DeploymentPreference`.
fn repository_template() -> Template {
    Template::load(&Template::workspace_template()).expect("template.yaml parses")
}

/// template.yaml as CloudFormation deploys it, translated by SAM: each function's memory
/// and timeout with Globals applied, its alias.
fn deployed_template() -> Template {
    Template::translate(&Template::workspace_template()).expect("template.yaml translates")
}

/// Lambda's default timeout when neither the function nor Globals set one.
const LAMBDA_DEFAULT_TIMEOUT: u64 = 3;
/// SQS's default visibility timeout.
const SQS_DEFAULT_VISIBILITY: u64 = 30;

/// AWS's advice for SQS event sources: a queue's visibility timeout at least 6x the
/// function's timeout, or a message reappears (and is handled twice) while a batch,
/// with its retries, may still be working on it.
#[test]
fn sizing_every_queue_outlasts_its_consumer_six_times() {
    let template = repository_template();
    let deployed = deployed_template();
    let mut checked = 0;
    let mut problems = Vec::new();
    for (id, function) in template.of_kind(FUNCTION) {
        let timeout = number(&deployed.resources[id], "Timeout", LAMBDA_DEFAULT_TIMEOUT);
        let events = function
            .properties
            .get("Events")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for event in events.values().filter(|e| e["Type"] == "SQS") {
            let queue_id = referenced(&event["Properties"]["Queue"])
                .unwrap_or_else(|| panic!("{id}'s SQS event names its queue"));
            let queue = &template.resources[&queue_id];
            let visibility = number(queue, "VisibilityTimeout", SQS_DEFAULT_VISIBILITY);
            checked += 1;
            if visibility < 6 * timeout {
                problems.push(format!(
                    "{queue_id}'s VisibilityTimeout is {visibility} s, under 6 x {id}'s Timeout of \
                     {timeout} s = {} s: raise the queue's VisibilityTimeout (docs/sizing.md)",
                    6 * timeout
                ));
            }
        }
    }
    assert!(
        checked >= 3,
        "found {checked} SQS consumers in template.yaml"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// docs/sizing.md's "What was chosen" table says each function's memory and timeout;
/// it must say what template.yaml deploys, or the next person sizes from wrong numbers.
#[test]
fn sizing_the_documented_memory_and_timeouts_are_the_templates() {
    let template = deployed_template();
    let by_binary: BTreeMap<String, (&str, &Resource)> = template
        .of_kind(LAMBDA_FUNCTION)
        .filter_map(|(id, f)| {
            let binary = f.metadata["BuildProperties"]["Binary"].as_str()?;
            Some((binary.to_owned(), (id, f)))
        })
        .collect();
    let doc = std::fs::read_to_string(workspace_root().join("docs/sizing.md"))
        .expect("docs/sizing.md exists");
    let chosen = doc
        .split("## What was chosen")
        .nth(1)
        .expect("docs/sizing.md has a \"What was chosen\" section");
    let mut rows = 0;
    let mut problems = Vec::new();
    for row in chosen.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(&(id, function)) = by_binary.get(cells[1]) else {
            continue; // the header row
        };
        rows += 1;
        let memory = number(function, "MemorySize", 128);
        let timeout = number(function, "Timeout", LAMBDA_DEFAULT_TIMEOUT);
        if cells[2] != format!("{memory} MB") || cells[3] != format!("{timeout} s") {
            problems.push(format!(
                "docs/sizing.md says {} has {} and {}; template.yaml gives {id} {memory} MB and {timeout} s",
                cells[1], cells[2], cells[3]
            ));
        }
    }
    assert!(rows >= 6, "docs/sizing.md's table names {rows} functions");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every deploy shifts traffic to the new version gradually and rolls back on errors:
/// each function publishes behind an alias, deploys as a canary (or linearly), never
/// all at once, and names as a rollback trigger an alarm on its own `Errors` metric.
#[test]
fn canary_every_function_deploys_gradually_behind_its_errors_alarm() {
    let template = repository_template();
    let deployed = deployed_template();
    let mut problems = Vec::new();
    let functions: Vec<_> = template.of_kind(FUNCTION).collect();
    assert!(functions.len() >= 6, "{} functions", functions.len());
    for (id, function) in functions {
        let properties = &function.properties;
        let live = deployed.of_kind("AWS::Lambda::Alias").any(|(_, alias)| {
            alias.properties["Name"] == "live"
                && referenced(&alias.properties["FunctionName"]).as_deref() == Some(id)
        });
        if !live {
            problems.push(format!("{id} does not publish behind the `live` alias"));
        }
        let preference = properties
            .get("DeploymentPreference")
            .cloned()
            .unwrap_or_default();
        let kind = preference["Type"].as_str().unwrap_or_default();
        if !(kind.starts_with("Canary") || kind.starts_with("Linear")) {
            problems.push(format!(
                "{id} deploys with DeploymentPreference Type {kind:?}: use a Canary or Linear type, \
                 so a bad version meets 10% of traffic, not all of it"
            ));
        }
        let alarms: Vec<String> = preference["Alarms"]
            .as_array()
            .map(|list| list.iter().filter_map(referenced).collect())
            .unwrap_or_default();
        let watches_own_errors = alarms.iter().any(|alarm| {
            template.resources.get(alarm).is_some_and(|a| {
                a.kind == "AWS::CloudWatch::Alarm"
                    && a.properties["MetricName"] == "Errors"
                    && a.properties["Namespace"] == "AWS/Lambda"
                    && a.properties["Dimensions"].as_array().is_some_and(|dims| {
                        dims.iter().any(|d| {
                            d["Name"] == "FunctionName"
                                && referenced(&d["Value"]).as_deref() == Some(id)
                        })
                    })
            })
        });
        if !watches_own_errors {
            problems.push(format!(
                "{id}'s DeploymentPreference has no alarm on its own AWS/Lambda Errors metric \
                 (Alarms: {alarms:?}): CodeDeploy could never roll it back"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------- the labs as documents

fn workshop_dir() -> PathBuf {
    workspace_root().join("docs/workshop")
}

/// The lab files, by number: `docs/workshop/lab-<n>-<slug>.md`.
fn labs() -> BTreeMap<u32, (String, String)> {
    let mut labs = BTreeMap::new();
    for entry in std::fs::read_dir(workshop_dir()).expect("docs/workshop exists") {
        let name = entry
            .expect("directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let Some(rest) = name.strip_prefix("lab-") else {
            continue;
        };
        if !name.ends_with(".md") {
            continue;
        }
        let number: u32 = rest
            .split('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: lab files are named lab-<n>-<slug>.md"));
        let text = std::fs::read_to_string(workshop_dir().join(&name)).expect("lab file reads");
        assert!(
            labs.insert(number, (name.clone(), text)).is_none(),
            "two files for lab {number}"
        );
    }
    labs
}

/// The text under a `## <title>` heading, up to the next `## ` heading.
fn section<'a>(text: &'a str, title: &str) -> Option<&'a str> {
    let start = text.find(&format!("\n## {title}\n"))? + title.len() + 5;
    let rest = &text[start..];
    Some(rest.find("\n## ").map_or(rest, |end| &rest[..end]))
}

#[test]
fn every_lab_has_a_goal_steps_a_checkpoint_and_what_you_learned() {
    let labs = labs();
    assert!(
        (6..=8).contains(&labs.len()),
        "the workshop has {} labs",
        labs.len()
    );
    assert_eq!(
        labs.keys().copied().collect::<Vec<_>>(),
        (1..=labs.len() as u32).collect::<Vec<_>>(),
        "labs are numbered from 1 without gaps"
    );
    let index = std::fs::read_to_string(workshop_dir().join("README.md"))
        .expect("docs/workshop/README.md is the index");
    for (number, (name, text)) in &labs {
        assert!(
            text.starts_with(&format!("# Lab {number}: ")),
            "{name} starts with `# Lab {number}: <title>`"
        );
        assert!(
            index.contains(&format!("({name})")),
            "the index links {name}"
        );
        let minutes: u32 = text
            .lines()
            .find_map(|l| l.strip_prefix("**Time:** about "))
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} says `**Time:** about <n> minutes`"));
        assert!((20..=40).contains(&minutes), "{name}: {minutes} minutes");
        for title in ["Goal", "Steps", "Checkpoint", "What you learned"] {
            let body =
                section(text, title).unwrap_or_else(|| panic!("{name} has a `## {title}` section"));
            assert!(body.trim().len() > 40, "{name}'s {title} says something");
        }
        let steps = section(text, "Steps").unwrap_or_default();
        assert!(
            steps.lines().filter(|l| l.starts_with("### ")).count() >= 2,
            "{name}: steps are numbered `### ` sub-headings"
        );
        let checkpoint = section(text, "Checkpoint").unwrap_or_default();
        assert!(
            checkpoint.contains(&format!("make lab-check LAB={number}")),
            "{name}'s checkpoint is `make lab-check LAB={number}`"
        );
        let learned = section(text, "What you learned").unwrap_or_default();
        assert!(
            learned.lines().filter(|l| l.starts_with("- ")).count() >= 3,
            "{name}: what you learned is a list"
        );
        // Every repository file a lab names by path exists (solutions and the scaffold's
        // output appear only after their steps).
        for path in backticked_paths(text) {
            let after_scaffold = path.contains("shipping");
            assert!(
                after_scaffold || workspace_root().join(&path).exists(),
                "{name} names {path}, which does not exist"
            );
        }
    }
}

/// Backticked repository paths in a text: `dir/file.ext` under a top-level directory
/// of the repository, or a top-level file.
fn backticked_paths(text: &str) -> Vec<String> {
    let roots = [
        "docs/",
        "shared/",
        "functions/",
        "local/",
        "tests/",
        "events/",
    ];
    let files = ["template.yaml", "Makefile", "README.md", "samconfig.toml"];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.contains(' ') && !s.contains('<') && !s.contains('*'))
        .filter(|s| roots.iter().any(|r| s.starts_with(r)) || files.contains(s))
        .map(|s| s.split(':').next().unwrap_or(s).to_owned())
        .collect()
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The commands `make lab-check LAB=<n>` runs, without running them (`make -n`).
fn checkpoint_commands(dir: &Path, lab: u32) -> Vec<String> {
    let mut make = nested::command("make", dir);
    make.args(["-n", "--no-print-directory", "lab-check"])
        .arg(format!("LAB={lab}"));
    let output = run(&mut make);
    assert!(
        output.status.success(),
        "`make lab-check LAB={lab}` is a Makefile target:\n{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Labs whose checkpoint selects tests only once the learner has written them (lab 2
/// adds the gift-message tests) or generated them (lab 5 scaffolds a crate): the
/// solutions test runs those, in a copy.
const SOLVED_IN_A_COPY: [u32; 2] = [2, 5];

#[test]
fn every_checkpoint_is_a_make_target_that_selects_tests() {
    let root = workspace_root();
    for (number, (name, _)) in labs() {
        let commands = checkpoint_commands(&root, number);
        let nextest: Vec<&String> = commands
            .iter()
            .filter(|c| c.contains("cargo nextest run"))
            .collect();
        if nextest.is_empty() {
            // The deploy lab checks offline what it deploys: the template lints and builds.
            let all = commands.join("\n");
            for step in ["cfn-lint", "sam build", "check_bootstraps.py"] {
                assert!(
                    all.contains(step),
                    "{name}: its checkpoint runs neither tests nor {step}:\n{all}"
                );
            }
            continue;
        }
        for command in nextest {
            assert!(
                command.contains("--no-tests=fail"),
                "{name}: a checkpoint that selects nothing must fail, not pass: {command}"
            );
            // The solutions run in a copy sharing target/: a workspace build there would
            // replace the repository's function binaries with the copy's (Makefile).
            assert!(
                command.contains(" -p ") && !command.contains("--workspace"),
                "{name}: a checkpoint selects packages with -p: {command}"
            );
            if SOLVED_IN_A_COPY.contains(&number) {
                continue;
            }
            let list = command
                .replace("cargo nextest run", "cargo nextest list -T oneline")
                .replace("--no-tests=fail", "")
                .replace("--no-fail-fast", "");
            let mut bash = nested::command("bash", &root);
            bash.args(["-c", &list]);
            let output = run(&mut bash);
            assert!(output.status.success(), "{list}:\n{}", text(&output));
            let tests = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count();
            assert!(tests >= 1, "{name}'s checkpoint selects no test: {list}");
        }
    }
}

// ---------------------------------------------------------------- the solutions, in a copy

/// A copy of the repository under `target/workshop/repo`, held under a lock so two test
/// runs sharing one target dir (a developer and an agent, say) do not use it at once.
/// The path is fixed, and files keep their modification times, so cargo reuses the
/// copy's artifacts from one run to the next instead of rebuilding every crate.
struct Scratch {
    root: PathBuf,
    lock: Child,
    lock_stdin: Option<ChildStdin>,
}

impl Scratch {
    /// Takes the lock, then copies the working tree (tracked and untracked files that
    /// git does not ignore, so the copy is what the developer sees) into a fresh dir.
    fn new() -> Scratch {
        let workshop = nested::target_dir().join("workshop");
        std::fs::create_dir_all(&workshop).expect("create target/workshop");
        // `flock` holds the lock while `cat` waits for its stdin: dropping the pipe (at
        // the end of the test, or when the test process dies) releases it.
        let mut lock = Command::new("flock")
            .arg(workshop.join("lock"))
            .args(["-c", "echo locked && exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("flock (util-linux) runs");
        let mut line = String::new();
        BufReader::new(lock.stdout.take().expect("flock's stdout"))
            .read_line(&mut line)
            .expect("flock reports the lock");
        assert_eq!(line.trim(), "locked");
        let lock_stdin = lock.stdin.take();

        let root = workshop.join("repo");
        // `dirty` exists from the first patch on: the artifacts may have been built from
        // patched sources whose originals are older (a run ends with lab 2 done in the
        // copy), so the next copy must not trust modification times.
        let dirty = workshop.join("dirty");
        let trust_mtimes = !dirty.exists();
        if root.exists() {
            std::fs::remove_dir_all(&root).expect("remove the previous copy");
        }
        let source = workspace_root();
        let listed = run(Command::new("git").current_dir(&source).args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ]));
        assert!(listed.status.success(), "git ls-files: {}", text(&listed));
        for path in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let relative = String::from_utf8_lossy(path).into_owned();
            let from = source.join(&relative);
            if !from.is_file() {
                continue; // deleted in the working tree
            }
            let to = root.join(&relative);
            std::fs::create_dir_all(to.parent().expect("a file has a parent")).expect("create dir");
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {relative}: {e}"));
            if trust_mtimes {
                keep_mtime(&from, &to);
            }
        }
        // Cargo's artifact names do not depend on where a workspace lives, so without
        // this the copy's builds would overwrite the repository's own (its test binary
        // while `make test` runs it; `emulator`, which compiles its path into itself). A
        // version of their own gives the copy's crates artifacts of their own.
        for manifest in [
            "shared/domain",
            "shared/aws-adapters",
            "local/emulator",
            "local/host",
            "local/proving",
            "tests",
        ]
        .into_iter()
        .map(|member| root.join(member).join("Cargo.toml"))
        .chain(
            std::fs::read_dir(root.join("functions"))
                .expect("functions/ in the copy")
                .map(|entry| entry.expect("directory entry").path().join("Cargo.toml")),
        ) {
            let text = std::fs::read_to_string(&manifest).expect("read a member's Cargo.toml");
            let versioned = text.lines().position(|l| l.starts_with("version = \""));
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let line = versioned.unwrap_or_else(|| panic!("{} has a version", manifest.display()));
            lines[line] = format!("{}-workshop\"", lines[line].trim_end_matches('"'));
            std::fs::write(&manifest, lines.join("\n") + "\n").expect("write Cargo.toml");
            let original = source.join(manifest.strip_prefix(&root).expect("in the copy"));
            keep_mtime(&original, &manifest);
        }
        // A repository of its own: the copy lives inside this one's target/, where
        // `git apply` would take patch paths as relative to this repository's root and
        // silently skip them.
        let init = run(Command::new("git").current_dir(&root).args(["init", "-q"]));
        assert!(init.status.success(), "git init: {}", text(&init));
        // The copy uses the repository's Python tools; its requirement files are as old
        // as the originals, so `make` does not reinstall them.
        std::os::unix::fs::symlink(source.join(".venv"), root.join(".venv")).expect("link .venv");
        for requirements in ["local/requirements.txt", "local/requirements-checkov.txt"] {
            keep_mtime(&source.join(requirements), &root.join(requirements));
        }
        std::fs::write(&dirty, "").expect("mark the copy's artifacts as in flux");
        Scratch {
            root,
            lock,
            lock_stdin,
        }
    }

    fn patch(&self, lab_patch: &str, reverse: bool) {
        let patch = workshop_dir().join("solutions").join(lab_patch);
        let mut apply = Command::new("git");
        apply.current_dir(&self.root).arg("apply");
        if reverse {
            apply.arg("-R");
        }
        let output = run(apply.arg(&patch));
        assert!(
            output.status.success(),
            "docs/workshop/solutions/{lab_patch} applies to the repository as it is now \
             (regenerate it if the code moved):\n{}",
            text(&output)
        );
    }

    /// Runs `make <args>` in the copy.
    fn make(&self, args: &[&str]) -> Output {
        let mut make = nested::command("make", &self.root);
        make.arg("--no-print-directory").args(args);
        run(&mut make)
    }

    /// With the patch applied, `make lab-check LAB=<lab>` passes (or, for a deliberate
    /// break, fails); returns its output. The copy is restored after.
    fn check(&self, lab: u32, patch: &str, passes: bool) -> String {
        let started = std::time::Instant::now();
        self.patch(patch, false);
        let output = self.make(&["lab-check", &format!("LAB={lab}")]);
        let log = text(&output);
        // Shown when the test fails (or with --no-capture): where the time went.
        eprintln!(
            "lab {lab} with {patch}: checkpoint {} in {:.0?}",
            if output.status.success() {
                "passed"
            } else {
                "failed"
            },
            started.elapsed()
        );
        assert_eq!(
            output.status.success(),
            passes,
            "lab {lab} with {patch}: the checkpoint should {}:\n{}",
            if passes { "pass" } else { "fail" },
            tail(&log)
        );
        self.patch(patch, true);
        log
    }
}

/// Gives `to` the modification time of `from`.
fn keep_mtime(from: &Path, to: &Path) {
    let modified = std::fs::metadata(from)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", from.display()));
    std::fs::File::options()
        .write(true)
        .open(to)
        .and_then(|f| f.set_modified(modified))
        .unwrap_or_else(|e| panic!("set the mtime of {}: {e}", to.display()));
}

/// The last lines of a long output, for an assertion message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

/// Whether one line of `log` contains every one of `parts`.
fn line_with(log: &str, parts: &[&str]) -> bool {
    log.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Closing flock's stdin ends `cat`, which releases the lock.
        drop(self.lock_stdin.take());
        let _ = self.lock.wait();
    }
}

/// The patches in `docs/workshop/solutions/`, each applied by the test below.
const SOLUTIONS: [&str; 6] = [
    "lab-2.patch",
    "lab-3-break.patch",
    "lab-6-timeout-only.patch",
    "lab-6.patch",
    "lab-8-bad-release.patch",
    "lab-8-break.patch",
];

/// Where a lab's patch stands against the tree the copy was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// It applies: the lab is not done yet (the repository as shipped).
    Applies,
    /// It takes back cleanly: the lab is done in this tree, as the lab says (a learner
    /// running `make test` after it).
    AlreadyIn,
    /// Neither: the files it touches are not as it expects.
    Neither,
}

impl Scratch {
    fn applies(&self, lab_patch: &str, reverse: bool) -> bool {
        let patch = workshop_dir().join("solutions").join(lab_patch);
        let mut apply = Command::new("git");
        apply.current_dir(&self.root).args(["apply", "--check"]);
        if reverse {
            apply.arg("-R");
        }
        run(apply.arg(&patch)).status.success()
    }

    fn standing(&self, lab_patch: &str) -> Standing {
        if self.applies(lab_patch, false) {
            Standing::Applies
        } else if self.applies(lab_patch, true) {
            Standing::AlreadyIn
        } else {
            Standing::Neither
        }
    }

    /// Whether a lab's solution is to be applied here: yes on the tree as shipped; no,
    /// with a line saying so, when the learner has done that lab already (its patch
    /// takes back cleanly, or it was done another way and its checkpoint passes). A lab
    /// left half done fails with what to do about it.
    fn to_do(&self, lab: u32, solution: &str) -> bool {
        match self.standing(solution) {
            Standing::Applies => true,
            Standing::AlreadyIn => {
                eprintln!(
                    "lab {lab} is already done in your working tree: its solution is not applied again"
                );
                false
            }
            Standing::Neither => {
                let checked = self.make(&["lab-check", &format!("LAB={lab}")]);
                assert!(
                    checked.status.success(),
                    "lab {lab} looks half done in your working tree: `make lab-check LAB={lab}` \
                     fails. Finish it, or take it back with `git restore` (the lab's files), \
                     and run `make test` again.\n{}",
                    tail(&text(&checked))
                );
                eprintln!(
                    "lab {lab} is done your own way in your working tree: its checkpoint passes"
                );
                false
            }
        }
    }

    /// Whether a deliberate break can be tried here. It is written against the code as
    /// shipped, and still applies after the earlier labs done as they say; it cannot when
    /// the break is still in the tree (the lab's restore step was not done yet).
    fn can_break(&self, lab: u32, break_patch: &str) -> bool {
        match self.standing(break_patch) {
            Standing::Applies => true,
            standing => panic!(
                "{}",
                if standing == Standing::AlreadyIn {
                    format!(
                        "lab {lab}'s deliberate break is still in your working tree: do the \
                         lab's restore step (`git restore` its file), then run `make test` again"
                    )
                } else {
                    format!(
                        "docs/workshop/solutions/{break_patch} (lab {lab}'s deliberate break) \
                         does not fit the files it touches. Doing the workshop: your version \
                         of those files differs from the lab's, so this check cannot run; \
                         `make lab-test` leaves it out. Maintaining it: regenerate the patch \
                         for the code as it is now."
                    )
                }
            ),
        }
    }

    /// The copy holds exactly its last commit: nothing changed, nothing left over.
    fn is_committed(&self, after: &str) {
        let status = run(Command::new("git")
            .current_dir(&self.root)
            .args(["status", "--porcelain"]));
        assert!(
            status.status.success() && status.stdout.is_empty(),
            "{after}, the tree is the last lab's commit:\n{}",
            text(&status)
        );
    }

    /// Runs `git` in the copy, which must succeed.
    fn git(&self, args: &[&str]) {
        let output = run(Command::new("git")
            .current_dir(&self.root)
            .args([
                "-c",
                "user.name=Learner",
                "-c",
                "user.email=learner@example.com",
            ])
            .args(args));
        assert!(output.status.success(), "git {args:?}: {}", text(&output));
    }

    /// `make lab-check LAB=<lab>` passes on the copy as it is; returns its output.
    fn passes(&self, lab: u32, after: &str) -> String {
        let started = std::time::Instant::now();
        let checked = self.make(&["lab-check", &format!("LAB={lab}")]);
        let log = text(&checked);
        eprintln!(
            "lab {lab}'s checkpoint {after}: {} in {:.0?}",
            if checked.status.success() {
                "passed"
            } else {
                "failed"
            },
            started.elapsed()
        );
        assert!(
            checked.status.success(),
            "lab {lab}'s checkpoint still passes {after}:\n{}",
            tail(&log)
        );
        log
    }
}

/// The workshop as a learner meets it: labs 1 to 4 done in order on a copy of the
/// repository, committed between labs as docs/workshop/README.md says, each earlier
/// checkpoint still green after every later lab; and every solution and deliberate
/// break checked against its checkpoint. On a learner's tree (this test is part of
/// `make test`), a lab already done is recognised and not applied again.
#[test]
fn the_labs_done_in_order_keep_every_checkpoint_and_every_break_fails_it() {
    let mut shipped: Vec<String> = std::fs::read_dir(workshop_dir().join("solutions"))
        .expect("docs/workshop/solutions exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    shipped.sort();
    assert_eq!(
        shipped, SOLUTIONS,
        "every patch in solutions/ is checked here"
    );

    let scratch = Scratch::new();
    scratch.git(&["add", "-A"]);
    scratch.git(&["commit", "-q", "-m", "the workshop's start"]);

    // Template-only changes first (labs 6 and 8): the copy's test binary is built once
    // for them. Lab 8's bad release is deployed, not tested: it must at least apply.
    if scratch.to_do(8, "lab-8-bad-release.patch") {
        scratch.patch("lab-8-bad-release.patch", false);
        scratch.patch("lab-8-bad-release.patch", true);
    }
    if scratch.to_do(6, "lab-6.patch") && scratch.can_break(6, "lab-6-timeout-only.patch") {
        let log = scratch.check(6, "lab-6-timeout-only.patch", false);
        assert!(
            line_with(
                &log,
                &[
                    "PaymentQueue's VisibilityTimeout is 60 s, under 6 x PaymentFunction's Timeout of 20 s"
                ]
            ),
            "lab 6, step 3: the check names the queue and the timeout:\n{}",
            tail(&log)
        );
        assert!(
            line_with(&log, &["docs/sizing.md says payment has 128 MB and 10 s"]),
            "lab 6, step 3: the check names the stale documentation:\n{}",
            tail(&log)
        );
        let log = scratch.check(6, "lab-6.patch", true);
        assert!(
            line_with(&log, &["2 tests run: 2 passed"]),
            "{}",
            tail(&log)
        );
    }
    if scratch.can_break(8, "lab-8-break.patch") {
        let log = scratch.check(8, "lab-8-break.patch", false);
        assert!(
            line_with(
                &log,
                &["InventoryFunction's DeploymentPreference has no alarm"]
            ),
            "lab 8, step 2: the check names the function:\n{}",
            tail(&log)
        );
    }

    // Lab 1 changes no code. Its checkpoint runs the function binaries, which a build in
    // the copy would replace under the other tests' feet (they share target/), so it is
    // left to `make test`'s own run of the demo.

    // Lab 2: the solution, committed at the end of the lab.
    if scratch.to_do(2, "lab-2.patch") {
        scratch.patch("lab-2.patch", false);
        scratch.git(&["commit", "-q", "-a", "-m", "lab 2"]);
    }
    let log = scratch.passes(2, "at the end of lab 2");
    assert!(
        line_with(&log, &["3 tests run: 3 passed"]),
        "{}",
        tail(&log)
    );

    // Lab 3: the break fails its checkpoint, naming the test; the lab's restore step
    // (`git restore` of the one file) takes back lab 3's change and nothing of lab 2's.
    if scratch.can_break(3, "lab-3-break.patch") {
        scratch.patch("lab-3-break.patch", false);
        let broken = scratch.make(&["lab-check", "LAB=3"]);
        assert!(
            !broken.status.success(),
            "lab 3, step 4: the break fails the checkpoint"
        );
        assert!(
            line_with(
                &text(&broken),
                &[
                    "FAIL",
                    "deliveries::every_event_delivered_twice_still_has_one_effect"
                ]
            ),
            "lab 3, step 4: the duplicate-delivery test fails:\n{}",
            tail(&text(&broken))
        );
        scratch.git(&["restore", "functions/notification/src/lib.rs"]);
    }
    // The restore leaves lab 2's commit whole, so the tree is the one lab 2's checkpoint
    // passed on: running that checkpoint again here would test the same files twice.
    scratch.is_committed("after lab 3's restore step");
    scratch.passes(3, "after lab 3's restore step");

    // Lab 4 changes no code: the tree stays the one every earlier checkpoint passed on.
    scratch.passes(4, "at the end of lab 4");
    scratch.is_committed("after lab 4");

    // The tree a learner has after lab 4: this test recognises lab 2 as done and can
    // still try every other lab's patch.
    assert_eq!(scratch.standing("lab-2.patch"), Standing::AlreadyIn);
    for patch in SOLUTIONS.iter().filter(|p| !p.starts_with("lab-2")) {
        assert_eq!(
            scratch.standing(patch),
            Standing::Applies,
            "{patch} after labs 1 to 4"
        );
    }

    // Lab 5 scaffolds with the project's generator; its output is the solution.
    if scratch.root.join("functions/shipping").exists() {
        eprintln!("lab 5 is already done in your working tree");
    } else {
        let before = scratch.make(&["lab-check", "LAB=5"]);
        assert!(
            !before.status.success(),
            "lab 5's checkpoint fails before the lab"
        );
        assert!(
            text(&before).contains("functions/shipping does not exist"),
            "{}",
            text(&before)
        );
        let scaffold = scratch.make(&["new-function", "NAME=shipping", "TRIGGER=sqs"]);
        assert!(
            scaffold.status.success(),
            "lab 5, step 2: `make new-function NAME=shipping TRIGGER=sqs` works:\n{}",
            text(&scaffold)
        );
    }
    let checked = scratch.passes(5, "once the function is scaffolded");
    assert!(checked.contains("template.yaml declares ShippingFunction"));
}
