//! The fork guide's tools (docs/fork.md), run for real on a throwaway copy of the
//! repository: `make new-function` must produce functions that build, pass their own
//! tests and every check `make test` applies to all functions, and that the local host
//! runs from the template with no other edit; `make rename` must leave no old name behind.
//!
//! The copy shares this repository's `target/` directory, so the registry crates are not
//! compiled again; its files keep their modification times, so cargo sees the unchanged
//! crates as built already and does not rebuild (and so invalidate) the repository's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use emulator::http_client;
use emulator::template::Template;
use emulator::workspace_root;
use http::Method;
use integration_tests::nested;
use lambda_host::invoke::Invoke;
use lambda_host::logs::Logs;
use lambda_host::{Host, HostOptions};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// A copy of the repository's files (tracked, and new ones not ignored) in a temporary
/// directory, removed when dropped.
struct Copy {
    root: PathBuf,
}

impl Copy {
    fn new(label: &str) -> Copy {
        let source = workspace_root();
        let root = std::env::temp_dir().join(format!("{label}-{}", uuid::Uuid::new_v4()));
        let listed = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(&source)
            .output()
            .expect("git lists the repository's files");
        assert!(listed.status.success(), "{}", stderr(&listed));
        for relative in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let relative = Path::new(std::str::from_utf8(relative).expect("UTF-8 paths"));
            let from = source.join(relative);
            // Tracked but deleted in the working tree: not part of the copy.
            let Ok(metadata) = std::fs::metadata(&from) else {
                continue;
            };
            let to = root.join(relative);
            std::fs::create_dir_all(to.parent().expect("a file has a parent"))
                .expect("copy directory");
            std::fs::copy(&from, &to).expect("copy file");
            let modified = metadata.modified().expect("modification time");
            std::fs::File::options()
                .write(true)
                .open(&to)
                .and_then(|file| file.set_modified(modified))
                .expect("keep the modification time");
        }
        Copy { root }
    }

    /// Runs a command in the copy; panics with its output unless it succeeds.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self.try_run(program, args);
        assert!(
            output.status.success(),
            "`{program} {}` failed in the copy:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            stderr(&output)
        );
        output
    }

    /// Runs a command in the copy as a shell would, with cargo pointed at the shared
    /// target directory.
    fn try_run(&self, program: &str, args: &[&str]) -> Output {
        nested::command(program, &self.root)
            .args(args)
            // One compiler at a time: the other tests run beside this one.
            .env("CARGO_BUILD_JOBS", "1")
            // Every dependency is in Cargo.lock and the local registry cache already.
            .env("CARGO_NET_OFFLINE", "true")
            // The copy has no .venv; tests that start the emulator use the repository's.
            .env("MOTO_PYTHON", workspace_root().join(".venv/bin/python"))
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"))
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.root.join(relative))
            .unwrap_or_else(|e| panic!("{relative} in the copy: {e}"))
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Waits until a function of the host has written a log line that `wanted` accepts.
async fn wait_for_log(host: &Host, function: &str, wanted: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = host
            .logs
            .lines()
            .iter()
            .filter(|line| line.function == function)
            .filter_map(|line| line.json())
            .any(|line| wanted(&line));
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{function} wrote no such line within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scaffolded_sqs_and_http_functions_build_pass_their_tests_and_join_the_topology() {
    let binaries = nested::target_dir().join("debug");
    assert!(
        binaries.join("notification").exists(),
        "build the functions first (`make functions`, which `make test` runs)"
    );
    let copy = Copy::new("new-function");
    let make = |args: &[&str]| copy.try_run("make", &[&["--no-print-directory"], args].concat());
    let untouched = copy.read("template.yaml");

    // Refusals come first and change nothing.
    for (args, says) in [
        (
            vec!["new-function", "NAME=Loyalty_Points", "TRIGGER=sqs"],
            "is not a function name",
        ),
        (
            vec!["new-function", "NAME=notification", "TRIGGER=sqs"],
            "already exists",
        ),
        (
            vec!["new-function", "NAME=loyalty-points", "TRIGGER=email"],
            "invalid choice",
        ),
    ] {
        let refused = make(&args);
        assert!(!refused.status.success(), "{args:?} is refused");
        assert!(stderr(&refused).contains(says), "{}", stderr(&refused));
    }
    assert_eq!(
        copy.read("template.yaml"),
        untouched,
        "a refusal changes nothing"
    );

    // `emulator` compiles the repository's path into itself (`workspace_root`, where the
    // tests find template.yaml; `make new-function` runs one, `make access`). A version
    // of its own gives the copies a build of their own, and a source file newer than that
    // build rebuilds it for this copy's path.
    let manifest = copy.read("local/emulator/Cargo.toml");
    let manifest = manifest.replacen("version = \"0.1.0\"", "version = \"0.1.0-copy\"", 1);
    std::fs::write(copy.root.join("local/emulator/Cargo.toml"), manifest).unwrap();
    std::fs::File::options()
        .write(true)
        .open(copy.root.join("local/emulator/src/lib.rs"))
        .and_then(|file| file.set_modified(std::time::SystemTime::now()))
        .expect("touch local/emulator/src/lib.rs");

    let made = make(&["new-function", "NAME=loyalty-points", "TRIGGER=sqs"]);
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(String::from_utf8_lossy(&made.stdout).contains("Next:"));
    let made = make(&["new-function", "NAME=gift-cards", "TRIGGER=http"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let again = make(&["new-function", "NAME=gift-cards", "TRIGGER=http"]);
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    // What `make test` asks of every crate, on the new ones.
    let cargo = cargo();
    let new = ["-p", "loyalty-points", "-p", "gift-cards"];
    copy.run(&cargo, &[&["fmt"], &new[..], &["--", "--check"]].concat());
    copy.run(
        &cargo,
        &[
            &["clippy"],
            &new[..],
            &["--all-targets", "--", "-D", "warnings"],
        ]
        .concat(),
    );
    let tested = copy.run(&cargo, &[&["test"], &new[..]].concat());
    let tested = String::from_utf8_lossy(&tested.stdout);
    assert!(
        tested.contains(
            "handles_its_events_and_dead_letters_poison_without_failing_the_batch ... ok"
        ) && tested.contains("answers_with_the_callers_correlation_id ... ok"),
        "{tested}"
    );
    // `make new-function` ends with `make access`: docs/access.md lists the new roles,
    // and the check below finds it current.
    let table = std::fs::read_to_string(copy.root.join("docs/access.md")).expect("access.md");
    assert!(
        table.contains("`LoyaltyPointsRole` (LoyaltyPointsFunction)")
            && table.contains("`GiftCardsRole` (GiftCardsFunction)"),
        "{table}"
    );
    // The checks every function is held to, reading the copy's template and contract.
    let checked = copy.run(
        &cargo,
        &[
            "test",
            "-p",
            "integration-tests",
            "--test",
            "integration",
            "--",
            "least_privilege::",
            "api_contract::",
            "security_scan::",
            "best_practices::",
        ],
    );
    assert!(
        String::from_utf8_lossy(&checked.stdout).contains(
            "least_privilege::every_function_is_granted_exactly_what_its_code_uses ... ok"
        )
    );
    copy.run(&cargo, &[&["build", "--bins"], &new[..]].concat());

    // The local host (what `make demo` and `make dev` run) reads the copy's template:
    // the new functions are in its topology, as the banner lists it, with no other edit.
    let host = Host::start(
        HostOptions {
            template: copy.root.join("template.yaml"),
            binaries,
            api_port: 0,
            ..HostOptions::default()
        },
        Logs::default(),
    )
    .await
    .expect("the host starts the copy's template");
    let functions = host.stack.functions();
    assert!(
        functions.contains(&"LoyaltyPointsFunction".to_owned())
            && functions.contains(&"GiftCardsFunction".to_owned()),
        "{functions:?}"
    );
    assert!(host.stack.api_routes().iter().any(|r| r.method == "GET"
        && r.path == "/gift-cards"
        && r.function == "GiftCardsFunction"));

    // Its sample event is a batch it accepts.
    let sample: Value = serde_json::from_str(&copy.read("events/loyalty-points.json")).unwrap();
    let answer = host
        .function("LoyaltyPointsFunction")
        .expect("the host runs it")
        .invoke(sample)
        .await
        .expect("it answers");
    assert_eq!(answer["batchItemFailures"], json!([]));

    // An OrderPlaced published to the topic reaches it through its subscription and queue.
    let envelope = json!({
        "id": uuid::Uuid::new_v4(), "type": "OrderPlaced", "version": 1,
        "occurred_at": "2026-11-24T12:00:00Z", "correlation_id": "scaffold-check-1",
        "order_id": uuid::Uuid::new_v4(),
        "payload": {"customer_id": "cust-4711", "items": [{"sku": "SKU-MUG", "quantity": 1,
            "unit_price": {"amount_minor": 1250, "currency": "EUR"}}],
            "total": {"amount_minor": 1250, "currency": "EUR"}}
    });
    aws_sdk_sns::Client::new(&host.sdk)
        .publish()
        .topic_arn(host.stack.topic_arn("OrderEventsTopic").unwrap())
        .message(envelope.to_string())
        .message_attributes(
            "type",
            aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("OrderPlaced")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("publish");
    wait_for_log(&host, "LoyaltyPointsFunction", |line| {
        line.to_string().contains("event handled") && line.to_string().contains("scaffold-check-1")
    })
    .await;

    // The route answers through the host's API.
    let response = http_client::send(
        Method::GET,
        &format!("{}/gift-cards", host.api_url()),
        &[("x-correlation-id", "scaffold-check-2")],
        None,
    )
    .await
    .expect("the API answers");
    assert_eq!(response.status, 200, "{}", response.body);
    let body: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(
        body,
        json!({"function": "gift-cards", "correlation_id": "scaffold-check-2"})
    );
}

/// The project's name in its four spellings, as `make rename` reads it from the template.
fn spellings(name: &str) -> Vec<String> {
    let words: Vec<&str> = name.split('-').collect();
    let capitalised = |w: &str| {
        let mut chars = w.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect::<String>())
            .unwrap_or_default()
    };
    let mut title = vec![capitalised(words[0])];
    title.extend(words[1..].iter().map(|w| w.to_string()));
    vec![
        name.to_owned(),
        words.join("_"),
        words.iter().map(|w| capitalised(w)).collect(),
        title.join(" "),
    ]
}

/// The `application` tag of a template's Globals: the project's name.
fn application(template: &Path) -> String {
    let text = std::fs::read_to_string(template).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("      application: "))
        .expect("template.yaml tags its functions with the application name");
    line.split_once(':').unwrap().1.trim().to_owned()
}

#[test]
fn rename_leaves_no_old_name_behind() {
    let old = application(&workspace_root().join("template.yaml"));
    let copy = Copy::new("rename");
    let refused = copy.try_run("make", &["--no-print-directory", "rename", "NAME=Acme"]);
    assert!(!refused.status.success());
    copy.run(
        "make",
        &["--no-print-directory", "rename", "NAME=acme-shop"],
    );

    let mut left = Vec::new();
    for entry in walk(&copy.root) {
        let Ok(text) = std::fs::read_to_string(&entry) else {
            continue; // not text
        };
        let lower = text.to_lowercase();
        for spelling in spellings(&old) {
            if lower.contains(&spelling.to_lowercase()) {
                left.push(format!("{}: {spelling}", entry.display()));
            }
        }
    }
    assert_eq!(left, Vec::<String>::new(), "old names left behind");

    let template = copy.root.join("template.yaml");
    assert_eq!(application(&template), "acme-shop");
    Template::load(&template).expect("the renamed template parses");
    assert!(
        copy.read("samconfig.toml")
            .contains("stack_name = \"acme-shop-dev\"")
    );
    assert!(
        copy.read("shared/aws-adapters/src/telemetry.rs")
            .contains("METRICS_NAMESPACE: &str = \"AcmeShop\"")
    );
    assert!(copy.read("README.md").starts_with("# Acme shop"));
}

/// Every file under `root`.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
