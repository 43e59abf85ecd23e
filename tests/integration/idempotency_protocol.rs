//! The shared claim / complete / release protocol, against DynamoDB.

use chrono::Utc;
use integration_tests::{Harness, new_key};
use shared::adapters::DynamoDbIdempotencyStore;
use shared::idempotency::{Claim, Idempotency, IdempotencyStatus};
use shared::ports::IdempotencyStore;

fn protocol(h: &Harness) -> Idempotency<DynamoDbIdempotencyStore> {
    let table = h.stack.table_name("IdempotencyTable").unwrap().to_string();
    Idempotency::new(DynamoDbIdempotencyStore::new(h.dynamodb.clone(), table))
}

#[tokio::test]
async fn claim_complete_and_replay() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let now_ms = Utc::now().timestamp_millis();
    let deadline = Some(now_ms + 5_000);

    let Claim::Acquired(claimed) = p.claim(&key, "h1", deadline, now_ms).await.unwrap() else {
        panic!("a fresh key is acquired");
    };
    let stored = p.store().get(&key).await.unwrap().unwrap();
    assert_eq!(stored.status, IdempotencyStatus::InProgress);
    let until = stored.in_progress_until.unwrap();
    assert!(
        (now_ms / 1000 + 5..=now_ms / 1000 + 7).contains(&until),
        "in-progress expiry follows the invocation deadline: {until}"
    );

    assert!(matches!(
        p.claim(&key, "h1", deadline, now_ms).await.unwrap(),
        Claim::InProgress { .. }
    ));
    p.complete(&claimed, "{\"charge\":\"ch_1\"}".into(), now_ms / 1000)
        .await
        .unwrap();
    assert_eq!(
        p.claim(&key, "h1", deadline, now_ms).await.unwrap(),
        Claim::Replay("{\"charge\":\"ch_1\"}".into())
    );
    assert_eq!(
        p.claim(&key, "h2", deadline, now_ms).await.unwrap(),
        Claim::Mismatch
    );
    let expires_at = p.store().get(&key).await.unwrap().unwrap().expires_at;
    assert!(expires_at > now_ms / 1000, "completed records carry a TTL");
}

#[tokio::test]
async fn a_released_key_can_be_claimed_again() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let now_ms = Utc::now().timestamp_millis();
    let Claim::Acquired(claimed) = p.claim(&key, "h1", None, now_ms).await.unwrap() else {
        panic!("acquired");
    };
    p.release(&claimed).await.unwrap();
    assert!(matches!(
        p.claim(&key, "h1", None, now_ms).await.unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test]
async fn an_abandoned_claim_expires_with_its_holders_deadline() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let then_ms = Utc::now().timestamp_millis() - 120_000;
    // Two minutes ago an invocation with 3 s left claimed the key, then crashed.
    assert!(matches!(
        p.claim(&key, "h1", Some(then_ms + 3_000), then_ms)
            .await
            .unwrap(),
        Claim::Acquired(_)
    ));
    let now_ms = Utc::now().timestamp_millis();
    assert!(matches!(
        p.claim(&key, "h1", Some(now_ms + 3_000), now_ms)
            .await
            .unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test]
async fn concurrent_claims_acquire_once() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let now_ms = Utc::now().timestamp_millis();
    let claims = futures::future::join_all(
        (0..8).map(|_| p.claim(&key, "h1", Some(now_ms + 10_000), now_ms)),
    )
    .await;
    let acquired = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::Acquired(_))))
        .count();
    assert_eq!(acquired, 1, "{claims:?}");
}

/// A holder whose claim lapsed (it ran past its deadline, or its last request reached
/// DynamoDB after it was stopped) finds the key completed by the invocation that took it
/// over. Completing must then fail as *transient*: the message is retried and its retry
/// replays the result, instead of going to the DLQ as if its work had not been done.
#[tokio::test]
async fn completing_a_lapsed_claim_taken_over_is_a_transient_failure_that_a_retry_replays() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let then_ms = Utc::now().timestamp_millis() - 120_000;
    let Claim::Acquired(lapsed) = p
        .claim(&key, "h1", Some(then_ms + 3_000), then_ms)
        .await
        .unwrap()
    else {
        panic!("acquired");
    };
    let now_ms = Utc::now().timestamp_millis();
    let Claim::Acquired(taken_over) = p
        .claim(&key, "h1", Some(now_ms + 5_000), now_ms)
        .await
        .unwrap()
    else {
        panic!("a lapsed claim is taken over");
    };
    p.complete(&taken_over, "{\"charge\":\"ch_2\"}".into(), now_ms / 1000)
        .await
        .unwrap();

    let late = p
        .complete(&lapsed, "{\"charge\":\"ch_1\"}".into(), now_ms / 1000)
        .await
        .unwrap_err();
    assert!(late.is_transient(), "{late}");
    assert_eq!(
        p.claim(&key, "h1", Some(now_ms + 5_000), now_ms)
            .await
            .unwrap(),
        Claim::Replay("{\"charge\":\"ch_2\"}".into()),
        "the retry replays what the new holder stored"
    );
}
