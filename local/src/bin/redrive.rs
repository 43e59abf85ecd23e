//! `make redrive`: list a dead-letter queue's messages with the reason each is there,
//! and with a target, move them back.
//!
//! ```text
//! redrive <dlq-url>                  list (nothing is taken)
//! redrive <dlq-url> --to <queue-url>  move every message back to <queue-url>
//! ```
//!
//! On AWS it uses your usual credentials; against `make emulator`, set
//! `AWS_ENDPOINT_URL=http://127.0.0.1:5000`.

use local::redrive::{list, move_back};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dlq, target) = match args.as_slice() {
        [dlq] => (dlq.clone(), None),
        [dlq, flag, target] if flag == "--to" => (dlq.clone(), Some(target.clone())),
        _ => {
            eprintln!("usage: redrive <dlq-url> [--to <queue-url>]");
            std::process::exit(2);
        }
    };
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::load_sdk_config().await);
    match target {
        None => {
            let letters = list(&sqs, &dlq).await?;
            for letter in &letters {
                println!(
                    "{}  {}\n    body: {}",
                    letter.message_id,
                    letter
                        .reason
                        .as_deref()
                        .map(|r| format!("reason: {r}"))
                        .or_else(|| letter
                            .receive_count
                            .as_ref()
                            .map(|n| format!("moved by the redrive policy after {n} receives")))
                        .unwrap_or_default(),
                    letter.body.chars().take(200).collect::<String>()
                );
            }
            println!("{} message(s) in {dlq}", letters.len());
        }
        Some(target) => {
            let moved = move_back(&sqs, &dlq, &target).await?;
            println!("moved {moved} message(s) from {dlq} to {target}");
        }
    }
    Ok(())
}
