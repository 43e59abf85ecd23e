//! The proving tools against a local host: the demo, the smoke test, the heartbeat,
//! `make dev` and `make redrive` as the workshop's labs show them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use emulator::Emulator;
use emulator::http_client;
use emulator::workspace_root;
use http::Method;
use lambda_host::logs::Logs;
use lambda_host::{Host, HostOptions};
use proving::smoke::{self, Deployed};
use serde_json::Value;

#[path = "../../host/tests/support/mod.rs"]
mod support;
use support::{depth_reaches, order_reaches, pipeline_host, post_order, seed_stock};

const DEADLINE: Duration = Duration::from_secs(60);

/// A long run reports where it stands while it runs: orders final, messages queued,
/// dead letters (`make reliability` and `make bench` print it every 10 s).
#[tokio::test]
async fn a_heartbeat_reports_orders_final_messages_queued_and_dead_letters() {
    let host = pipeline_host().await;
    let stores = std::sync::Arc::new(
        proving::audit::Stores::watch(&host.sdk, &host.stack)
            .await
            .unwrap(),
    );
    let (lines, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let _heartbeat = proving::heartbeat::Heartbeat::every(
        Duration::from_millis(200),
        "test",
        stores,
        1,
        move |line| {
            let _ = lines.send(line);
        },
    );
    let order: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/demo/order.json")).unwrap(),
    )
    .unwrap();
    let placed = post_order(&host, &order, &uuid::Uuid::new_v4().to_string(), &[]).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = tokio::time::timeout_at(deadline.into(), heard.recv())
            .await
            .expect("a heartbeat within the deadline")
            .expect("the heartbeat runs");
        assert!(line.contains("... test "), "{line}");
        if line.contains("1 of 1 orders final, 0 messages queued, 0 dead letters") {
            break;
        }
    }
}

/// Every descendant of `pid`, from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // The parent pid is the second field after the command in parentheses.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(parent) = parent {
            parents.entry(parent).or_default().push(child);
        }
    }
    let mut found = Vec::new();
    let mut stack = vec![pid];
    while let Some(next) = stack.pop() {
        for child in parents.get(&next).cloned().unwrap_or_default() {
            found.push(child);
            stack.push(child);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn dev_stops_everything_on_ctrl_c() {
    use tokio::io::AsyncBufReadExt;
    let mut dev = tokio::process::Command::new(env!("CARGO_BIN_EXE_local"))
        .arg("dev")
        .env("API_PORT", "0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = dev.id().unwrap();
    let mut lines = tokio::io::BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut api = String::new();
    let mut banner = String::new();
    while let Ok(Some(line)) = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .unwrap()
    {
        banner.push_str(&line);
        banner.push('\n');
        if let Some(rest) = line.strip_prefix("API") {
            api = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert!(banner.contains("no authentication"), "{banner}");
    // Start a function process, so there is something to stop.
    let missing = http_client::send(Method::GET, &format!("{api}/orders/none"), &[], None)
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let children = descendants(pid);
    assert!(
        children.len() >= 2,
        "the emulator and a function run: {children:?}"
    );

    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(DEADLINE, dev.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while children.iter().any(|c| alive(*c)) {
        assert!(
            Instant::now() < deadline,
            "orphans left behind: {children:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_demo_passes() {
    let host = pipeline_host().await;
    let passed = proving::demo::run(&host, &workspace_root().join("events/demo"))
        .await
        .unwrap();
    assert!(
        passed,
        "make demo's scenarios all reach their expected states"
    );
}

#[tokio::test]
async fn the_smoke_test_passes_against_the_local_cloud() {
    let host = pipeline_host().await;
    let stack = Deployed::local(&host);

    let report = smoke::run(
        &host.sdk,
        &stack,
        &workspace_root().join("events/demo"),
        DEADLINE,
    )
    .await
    .unwrap();

    assert!(report.passed(), "{report}");
    let states: Vec<_> = report
        .orders
        .iter()
        .map(|o| (o.name.as_str(), o.status.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("happy order", "CONFIRMED"),
            ("declined card", "PAYMENT_FAILED"),
            ("out of stock", "CANCELLED"),
            ("same order twice, one key", "CONFIRMED"),
        ]
    );
    let checked: Vec<_> = report
        .dead_letters
        .iter()
        .map(|(q, _)| q.as_str())
        .collect();
    for queue in [
        "RelayDeadLetterQueue",
        "PaymentDeadLetterQueue",
        "InventoryDeadLetterQueue",
        "NotificationDeadLetterQueue",
    ] {
        assert!(checked.contains(&queue), "{queue} is checked: {checked:?}");
    }
}

#[tokio::test]
async fn the_smoke_test_fails_when_an_order_does_not_reach_its_state() {
    // An inventory function that never asks for work: paid orders stay PAID.
    let host = Host::start(
        HostOptions {
            api_port: 0,
            overrides: HashMap::from([(
                "InventoryFunction".to_string(),
                (
                    PathBuf::from("/bin/sh"),
                    vec!["-c".into(), "sleep 600".into()],
                ),
            )]),
            ..HostOptions::default()
        },
        Logs::default(),
    )
    .await
    .unwrap();

    let report = smoke::run(
        &host.sdk,
        &Deployed::local(&host),
        &workspace_root().join("events/demo"),
        Duration::from_secs(15),
    )
    .await
    .unwrap();

    assert!(!report.passed(), "{report}");
    let happy = &report.orders[0];
    assert_eq!(
        (happy.name.as_str(), happy.status.as_str()),
        ("happy order", "PAID")
    );
    assert!(report.to_string().contains("FAIL  happy order"), "{report}");
}

#[tokio::test]
async fn the_smoke_test_finds_a_deployed_stacks_api_and_dlqs_through_cloudformation() {
    let emulator = Emulator::start().await.unwrap();
    let sdk = emulator.sdk_config();
    let template = serde_json::json!({
        "Resources": {
            "WorkQueue": {"Type": "AWS::SQS::Queue"},
            "WorkDeadLetterQueue": {"Type": "AWS::SQS::Queue"}
        },
        "Outputs": {"ApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/v1"}}
    });
    aws_sdk_cloudformation::Client::new(&sdk)
        .create_stack()
        .stack_name("smoke-me")
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();

    let stack = proving::smoke::Deployed::describe(&sdk, "smoke-me")
        .await
        .unwrap();

    assert_eq!(
        stack.outputs.get("ApiUrl").map(String::as_str),
        Some("https://abc.execute-api.us-east-1.amazonaws.com/v1")
    );
    let dlqs = stack.dead_letter_queues();
    assert_eq!(dlqs.len(), 1, "{dlqs:?}");
    assert_eq!(dlqs[0].0, "WorkDeadLetterQueue");
    assert!(
        dlqs[0].1.contains("WorkDeadLetterQueue"),
        "the queue's URL: {dlqs:?}"
    );
    // moto lists a stack's alarms without their logical ids, so the alarms are found
    // by resource type in the unit test of `Deployed` instead.
    let missing = proving::smoke::Deployed::describe(&sdk, "no-such-stack").await;
    assert!(missing.is_err_and(|e| e.to_string().contains("no-such-stack")));
}

/// `make redrive` prints what untrusted senders wrote with its control characters
/// escaped, so a hostile body cannot clear the screen or overwrite the lines before it,
/// while ordinary Unicode stays readable.
#[tokio::test]
async fn redrive_prints_a_hostile_body_and_reason_escaped() {
    let emulator = emulator::Emulator::start().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&emulator.sdk_config());
    let dlq = sqs
        .create_queue()
        .queue_name("HostileDlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let reason = aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value("bad\u{1b}]0;owned\u{7} \u{9b}31m\u{202e}txt.exe")
        .build()
        .unwrap();
    sqs.send_message()
        .queue_url(&dlq)
        .message_body("Grüße\u{1b}[2J\rpayment accepted\nnext line")
        .message_attributes(aws_adapters::REASON_ATTRIBUTE, reason)
        .send()
        .await
        .unwrap();

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
        .arg(&dlq)
        .env("AWS_ENDPOINT_URL", emulator.endpoint_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();

    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for raw in ['\u{1b}', '\r', '\u{7}', '\u{9b}', '\u{202e}'] {
        assert!(!stdout.contains(raw), "{raw:?} printed raw: {stdout:?}");
    }
    assert!(
        stdout.contains(r"body: Grüße\u{1b}[2J\rpayment accepted\nnext line"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r"reason: bad\u{1b}]0;owned\u{7} \u{9b}31m\u{202e}txt.exe"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&format!("1 message(s) in {dlq}\n")),
        "{stdout}"
    );
}

/// Runs `make redrive`'s binary against `host`'s emulator; its standard output.
fn redrive(host: &Host, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_redrive"))
        .args(args)
        .env("AWS_ENDPOINT_URL", host.emulator.endpoint_url())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

// ------------------------------------------ the workshop's sample outputs (docs/workshop/)

/// A lab's text, e.g. `lab_text("lab-4-poison-and-redrive")`.
fn lab_text(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join(format!("docs/workshop/{name}.md"))).unwrap()
}

/// The ```text blocks of a lab's step `### <step>. …`, in order, without their fences.
fn samples(lab: &str, step: u32) -> Vec<String> {
    let heading = format!("\n### {step}. ");
    let start = lab
        .find(&heading)
        .unwrap_or_else(|| panic!("the lab has no step {step}"));
    let rest = &lab[start + heading.len()..];
    let section = rest.find("\n##").map_or(rest, |end| &rest[..end]);
    section
        .split("```text\n")
        .skip(1)
        .map(|block| block.split("\n```").next().unwrap_or_default().to_owned())
        .collect()
}

/// A line with what changes from run to run made equal: every UUID becomes `<id>`, every
/// word with a digit in it (times, durations, ports, charge ids) `#`, and every run of
/// spaces one space (columns widen with their numbers).
fn shape(line: &str) -> String {
    let mut without_ids = String::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let uuid = rest
            .get(..36)
            .filter(|s| s.as_bytes()[8] == b'-' && uuid::Uuid::try_parse(s).is_ok());
        if uuid.is_some() {
            without_ids.push_str("<id>");
            rest = &rest[36..];
        } else {
            without_ids.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    let mut shaped = String::new();
    let mut word = String::new();
    for c in without_ids.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        if word.chars().any(|w| w.is_ascii_digit()) {
            shaped.push('#');
        } else {
            shaped.push_str(&word);
        }
        word.clear();
        shaped.push(c);
    }
    shaped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every line of `text`, shaped.
fn shapes(text: &str) -> Vec<String> {
    text.lines().map(shape).collect()
}

/// The same lines, shaped, in any order: for lines that come from processes running side
/// by side, whose order changes from run to run.
fn shapes_sorted(text: &str) -> Vec<String> {
    let mut lines = shapes(text);
    lines.sort();
    lines
}

/// `(order, from, to)` of a demo status line: `    0.90s  happy order   PENDING -> CONFIRMED`.
fn status_change(line: &str) -> (String, String, String) {
    let parsed = line.trim_start().split_once("s  ").and_then(|(_, rest)| {
        let (before, to) = rest.rsplit_once(" -> ")?;
        let (order, from) = before.trim_end().rsplit_once(' ')?;
        Some((
            order.trim().to_owned(),
            from.to_owned(),
            to.trim().to_owned(),
        ))
    });
    parsed.unwrap_or_else(|| panic!("not a status line: {line:?}"))
}

/// The readable lines (as `make dev` prints them) `function` has written so far.
fn readable_lines(host: &Host, function: &str) -> Vec<String> {
    host.logs
        .lines()
        .iter()
        .filter(|l| l.function == function)
        .map(|l| lambda_host::logs::readable(l, false))
        .collect()
}

/// Waits until `function` has written a line whose JSON `found` accepts; that JSON.
async fn wait_for_line(host: &Host, function: &str, found: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let line = host
            .logs
            .lines()
            .iter()
            .filter(|l| l.function == function)
            .filter_map(|l| l.json())
            .find(|j| found(j));
        if let Some(line) = line {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "{function} never wrote that line"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lab 1's samples are what `make demo` and `make dev` print, but for ids, times and
/// ports: the happy order's timeline has the same steps, the status lines take each
/// order from PENDING to the state it really ends in, the `make dev` line reads the same,
/// and the replayed answer is the first one, verbatim, `PENDING` while `GET` says
/// `CONFIRMED`.
#[tokio::test]
async fn lab_1_samples_are_what_the_demo_and_make_dev_print() {
    let lab = lab_text("lab-1-run-the-demo");

    // `make demo` runs this binary.
    let demo = std::process::Command::new(env!("CARGO_BIN_EXE_local"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8(demo.stdout).unwrap();
    assert!(
        demo.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let block = |first: &str| -> Vec<&str> {
        stdout
            .lines()
            .skip_while(|l| !l.starts_with(first))
            .take_while(|l| !l.is_empty())
            .collect()
    };

    // Step 2: the status lines. Which steps the demo sees depends on timing, so each
    // order's lines in the lab must go from PENDING to where the order really ends.
    let real = block("waiting for the orders");
    let sample = &samples(&lab, 2)[0];
    assert_eq!(sample.lines().next(), real.first().copied());
    let mut real_ends = std::collections::BTreeMap::new();
    for line in &real[1..] {
        let (order, _, to) = status_change(line);
        real_ends.insert(order, to);
    }
    let mut sample_ends = std::collections::BTreeMap::new();
    for line in sample.lines().skip(1) {
        let (order, from, to) = status_change(line);
        let was = sample_ends.insert(order.clone(), to.clone());
        assert_eq!(
            from,
            was.unwrap_or_else(|| "PENDING".to_owned()),
            "lab 1 step 2: {order} jumps"
        );
    }
    assert_eq!(sample_ends, real_ends, "lab 1 step 2: the final states");

    // Step 3: the happy order's timeline: the same steps; functions running side by side
    // may write theirs in another order.
    let real = block("happy order (");
    let sample = &samples(&lab, 3)[0];
    assert_eq!(
        shapes_sorted(sample),
        shapes_sorted(&real.join("\n")),
        "lab 1 step 3:\n{}",
        real.join("\n")
    );

    // Steps 5 and 6, on `make dev`'s pipeline.
    let host = pipeline_host().await;
    seed_stock(&host, "SKU-MUG", 5).await;
    let order: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/demo/order.json")).unwrap(),
    )
    .unwrap();
    let key = uuid::Uuid::new_v4().to_string();
    let correlation = [("x-correlation-id", "lab1-first-order")];
    // `make dev` prints what customers are told from a queue of its own on their topic.
    let watch = proving::demo::watch_notifications(&host, "lab-1-notifications")
        .await
        .unwrap();
    let created = post_order(&host, &order, &key, &correlation).await;
    let sample = &samples(&lab, 5)[0];
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(sample.lines().next(), Some("HTTP/1.1 201 Created"));
    for header in sample.lines().skip(1).take_while(|l| !l.is_empty()) {
        let name = header.split(':').next().unwrap_or_default();
        assert!(created.headers.contains_key(name), "lab 1 step 5: {header}");
    }
    assert_eq!(
        sample.lines().last().map(shape),
        Some(shape(&created.body)),
        "lab 1 step 5: the answer"
    );

    let paid = wait_for_line(&host, "PaymentFunction", |j| {
        j["message"] == "payment succeeded"
    })
    .await;
    let shown = readable_lines(&host, "PaymentFunction")
        .into_iter()
        .find(|l| l.contains(paid["charge_id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(
        shapes(&samples(&lab, 6)[0]),
        [shape(&shown)],
        "lab 1 step 6: {shown}"
    );

    // The replay is the first answer, verbatim: PENDING, while the order is CONFIRMED.
    let id = serde_json::from_str::<Value>(&created.body).unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    order_reaches(&host, &id, "CONFIRMED").await;
    let replayed = post_order(&host, &order, &key, &correlation).await;
    assert_eq!(replayed.status, 201);
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(replayed.body, created.body, "the first answer, verbatim");
    assert!(created.body.contains(r#""status":"PENDING""#));
    // Step 6's notification lines: the order's two, as `make dev` prints them.
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let mut told = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while told.len() < 2 {
        assert!(Instant::now() < deadline, "notifications: {told:?}");
        let received = sqs
            .receive_message()
            .queue_url(&watch)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            told.push(proving::demo::notification_line(
                message.body().unwrap_or_default(),
            ));
            sqs.delete_message()
                .queue_url(&watch)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(
        shapes_sorted(&samples(&lab, 6)[1]),
        shapes_sorted(&told.join("\n")),
        "lab 1 step 6: the notifications:\n{}",
        told.join("\n")
    );
    let sample_replay = &samples(&lab, 6)[2];
    assert!(sample_replay.contains("\nidempotent-replayed: true\n"));
    assert_eq!(
        sample_replay.lines().last(),
        sample.lines().last(),
        "lab 1 step 6: the replay is the answer of step 5, verbatim"
    );
}

/// The `message_id=` of the first line of `text` that has one.
fn message_id_in(text: &str) -> &str {
    let at = text.find("message_id=").expect("a message_id") + "message_id=".len();
    &text[at..at + 36]
}

/// Waits until payment has handled `n` poison messages, each to its REPORT and its
/// metric, and nothing else; every line payment wrote.
async fn after_poison(host: &Host, n: usize) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let lines = readable_lines(host, "PaymentFunction");
        let count = |word: &str| lines.iter().filter(|l| l.contains(word)).count();
        if count(" METRIC PoisonMessages=") == n && count(" REPORT ") == n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "payment never handled poison message {n}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lab 4's samples are what `make dev` and `make redrive` print, but for ids, times and
/// ports, and the listing names a forwarded message by the `message_id` of its ERROR
/// line: after the poison message, after moving it back (it comes back once, with a new
/// id), and for a message without a reason.
#[tokio::test]
async fn lab_4_samples_are_what_make_dev_and_make_redrive_print() {
    let lab = lab_text("lab-4-poison-and-redrive");
    let host = pipeline_host().await;
    let sqs = aws_sdk_sqs::Client::new(&host.sdk);
    let queue = host.stack.queue_url("PaymentQueue").unwrap().to_owned();
    let dlq = host
        .stack
        .queue_url("PaymentDeadLetterQueue")
        .unwrap()
        .to_owned();
    // Step 3: the poison message, as the lab sends it.
    let poison = r#"{"type": "OrderPlaced", "version": 1"#;
    assert!(lab.contains(&format!("MessageBody='{poison}'")));
    sqs.send_message()
        .queue_url(&queue)
        .message_body(poison)
        .send()
        .await
        .unwrap();
    let logged = after_poison(&host, 1).await.join("\n");
    assert_eq!(depth_reaches(&sqs, &dlq, (1, 0)).await, (1, 0));
    let sample_log = &samples(&lab, 3)[0];
    assert_eq!(
        shapes_sorted(sample_log),
        shapes_sorted(&logged),
        "lab 4 step 3:\n{logged}"
    );

    // Step 4: the listing names the ERROR line's message_id.
    let listed = redrive(&host, &[&dlq]);
    let sample_list = &samples(&lab, 4)[0];
    assert_eq!(
        shapes(sample_list),
        shapes(&listed),
        "lab 4 step 4:\n{listed}"
    );
    assert!(
        listed.starts_with(&format!("original id {} ", message_id_in(&logged))),
        "{listed}"
    );
    assert!(
        sample_list.starts_with(&format!("original id {} ", message_id_in(sample_log))),
        "lab 4: the listing's id in step 4 is the ERROR line's of step 3"
    );

    // Step 5: moved back once; it fails again at once, with a new id, and is listed by it.
    let moved = redrive(&host, &[&dlq, "--to", &queue]);
    let sample_step_5 = samples(&lab, 5);
    assert_eq!(
        shapes(&sample_step_5[0]),
        shapes(&moved),
        "lab 4 step 5: {moved}"
    );
    let again = after_poison(&host, 2).await;
    let again = again[again.iter().rposition(|l| l.contains(" ERROR ")).unwrap()..].join("\n");
    assert_eq!(
        shapes_sorted(&sample_step_5[1]),
        shapes_sorted(&again),
        "lab 4 step 5:\n{again}"
    );
    assert_eq!(depth_reaches(&sqs, &dlq, (1, 0)).await, (1, 0), "back once");
    let listed = redrive(&host, &[&dlq]);
    assert_eq!(
        shapes(&sample_step_5[2]),
        shapes(&listed),
        "lab 4 step 5:\n{listed}"
    );
    assert!(
        listed.starts_with(&format!("original id {} ", message_id_in(&again))),
        "{listed}"
    );
    assert!(
        sample_step_5[2].starts_with(&format!(
            "original id {} ",
            message_id_in(&sample_step_5[1])
        )),
        "lab 4: the listing's id in step 5 is the new ERROR line's"
    );

    // Step 6: a message sent to the DLQ by hand: no reason, received 0 times.
    sqs.purge_queue().queue_url(&dlq).send().await.unwrap();
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("events/payment.json")).unwrap(),
    )
    .unwrap();
    sqs.send_message()
        .queue_url(&dlq)
        .message_body(event["Records"][0]["body"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let listed = redrive(&host, &[&dlq]);
    assert_eq!(
        shapes(&samples(&lab, 6)[0]),
        shapes(&listed),
        "lab 4 step 6:\n{listed}"
    );
    assert!(
        listed.contains("received 0 time(s) before this listing"),
        "{listed}"
    );
    let moved = redrive(&host, &[&dlq, "--to", &queue]);
    assert!(moved.starts_with("moved 1 message(s)"), "{moved}");
    wait_for_line(&host, "PaymentFunction", |j| {
        j["message"] == "order is not where this event expects it; nothing to do"
    })
    .await;
    assert_eq!(
        redrive(&host, &[&dlq]),
        format!("0 message(s) in {dlq}\n"),
        "lab 4 step 6"
    );
}
