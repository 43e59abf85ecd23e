//! `make redrive`: list a dead-letter queue's messages with the reason each is there,
//! and with a target, move them back.
//!
//! ```text
//! redrive <dlq-url>                  list (nothing is taken)
//! redrive <dlq-url> --to <queue-url>  move every message back to <queue-url>
//! ```
//!
//! Each listed message shows the id to look for in the logs (for a message a function
//! forwarded, the original id its ERROR line names, not the DLQ copy's own id), how it
//! got there (forwarded at once with a reason, or moved by the redrive policy, with how
//! often it was received before the listing) and the start of its body.
//!
//! A move is refused unless `<queue-url>` is the DLQ's source (its redrive policy names
//! the DLQ). Ids, reasons and bodies are printed with control characters escaped.
//!
//! On AWS it uses your usual credentials; against `make emulator`, set
//! `AWS_ENDPOINT_URL=http://127.0.0.1:5000`.

use std::process::ExitCode;

use proving::redrive::{RedriveError, list, move_back};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dlq, target) = match args.as_slice() {
        [dlq] => (dlq.clone(), None),
        [dlq, flag, target] if flag == "--to" => (dlq.clone(), Some(target.clone())),
        _ => {
            eprintln!("usage: redrive <dlq-url> [--to <queue-url>]");
            return ExitCode::from(2);
        }
    };
    // The error's own words (a refusal names both queues), not its Debug form.
    match run(&dlq, target.as_deref()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(dlq: &str, target: Option<&str>) -> Result<(), RedriveError> {
    let sqs = aws_sdk_sqs::Client::new(&aws_adapters::sdk::load_sdk_config().await);
    match target {
        None => {
            let letters = list(&sqs, dlq).await?;
            for letter in &letters {
                println!("{}", letter.describe());
            }
            println!("{} message(s) in {dlq}", letters.len());
        }
        Some(target) => {
            let moved = move_back(&sqs, dlq, target).await?;
            println!("moved {moved} message(s) from {dlq} to {target}");
        }
    }
    Ok(())
}
