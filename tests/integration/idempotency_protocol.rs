//! The shared claim / complete / release protocol, against DynamoDB.

use aws_adapters::DynamoDbIdempotencyStore;
use chrono::Utc;
use domain::failure::Failure;
use domain::idempotency::{
    Idempotency, IdempotencyRecord, IdempotencyStatus, IdempotencyStore, PutIfAbsent, Seen,
};
use integration_tests::{Harness, new_key};

fn protocol(h: &Harness) -> Idempotency<DynamoDbIdempotencyStore> {
    let table = h.stack.table_name("IdempotencyTable").unwrap().to_string();
    Idempotency::new(DynamoDbIdempotencyStore::new(h.dynamodb.clone(), table))
}

/// A claim taken two minutes ago by an invocation with 3 s left (so it lapsed), and the
/// claim that took the key over now, with `deadline_ms` as its invocation's deadline.
async fn lapsed_and_taken_over(
    p: &Idempotency<DynamoDbIdempotencyStore>,
    key: &str,
    deadline_ms: i64,
) -> (IdempotencyRecord, IdempotencyRecord) {
    let then_ms = Utc::now().timestamp_millis() - 120_000;
    let Seen::New(lapsed) = p
        .claim(key, "h1", Some(then_ms + 3_000), then_ms)
        .await
        .unwrap()
    else {
        panic!("acquired");
    };
    let now_ms = Utc::now().timestamp_millis();
    let Seen::New(taken_over) = p.claim(key, "h1", Some(deadline_ms), now_ms).await.unwrap() else {
        panic!("a lapsed claim is taken over");
    };
    (lapsed, taken_over)
}

#[tokio::test]
async fn claim_complete_and_replay() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let now_ms = Utc::now().timestamp_millis();
    let deadline = Some(now_ms + 5_000);

    let Seen::New(claimed) = p.claim(&key, "h1", deadline, now_ms).await.unwrap() else {
        panic!("a fresh key is acquired");
    };
    let stored = p.store().get(&key).await.unwrap().unwrap();
    assert_eq!(stored.status, IdempotencyStatus::InProgress);
    let until_ms = stored.in_progress_expiration.unwrap();
    assert!(
        (now_ms + 5_000..=now_ms + 7_000).contains(&until_ms),
        "in-progress expiry follows the invocation deadline: {until_ms}"
    );

    assert!(matches!(
        p.claim(&key, "h1", deadline, now_ms).await.unwrap(),
        Seen::Busy { .. }
    ));
    p.complete(&claimed, "{\"charge\":\"ch_1\"}".into(), now_ms / 1000)
        .await
        .unwrap();
    assert_eq!(
        p.claim(&key, "h1", deadline, now_ms).await.unwrap(),
        Seen::AlreadyDone("{\"charge\":\"ch_1\"}".into())
    );
    assert_eq!(
        p.claim(&key, "h2", deadline, now_ms).await.unwrap(),
        Seen::Mismatch
    );
    let expiration = p.store().get(&key).await.unwrap().unwrap().expiration;
    assert!(expiration > now_ms / 1000, "completed records carry a TTL");
}

#[tokio::test]
async fn a_released_key_can_be_claimed_again() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let now_ms = Utc::now().timestamp_millis();
    let Seen::New(claimed) = p.claim(&key, "h1", None, now_ms).await.unwrap() else {
        panic!("acquired");
    };
    p.release(&claimed).await.unwrap();
    assert!(matches!(
        p.claim(&key, "h1", None, now_ms).await.unwrap(),
        Seen::New(_)
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
        Seen::New(_)
    ));
    let now_ms = Utc::now().timestamp_millis();
    assert!(matches!(
        p.claim(&key, "h1", Some(now_ms + 3_000), now_ms)
            .await
            .unwrap(),
        Seen::New(_)
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
        .filter(|c| matches!(c, Ok(Seen::New(_))))
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
    let now_ms = Utc::now().timestamp_millis();
    let (lapsed, taken_over) = lapsed_and_taken_over(&p, &key, now_ms + 5_000).await;
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
        Seen::AlreadyDone("{\"charge\":\"ch_2\"}".into()),
        "the retry replays what the new holder stored"
    );
}

/// Claims have owners: a holder whose claim lapsed can neither complete nor delete the
/// claim of the invocation that took the key over while that one is still working. On
/// today's code before owner tokens, the lapsed holder's `complete` overwrote the new
/// claim (both were "in progress with the same hash") and its `release` deleted it.
#[tokio::test]
async fn a_lapsed_holder_can_neither_complete_nor_release_the_next_holders_claim() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let now_ms = Utc::now().timestamp_millis();
    let (lapsed, current) = lapsed_and_taken_over(&p, &key, now_ms + 30_000).await;

    let late = p
        .complete(&lapsed, "{\"charge\":\"ch_1\"}".into(), now_ms / 1000)
        .await
        .unwrap_err();
    assert!(late.is_transient(), "{late}");
    p.release(&lapsed).await.unwrap();
    let stored = p.store().get(&key).await.unwrap().unwrap();
    assert_eq!(stored.status, IdempotencyStatus::InProgress);
    assert_eq!(
        stored.owner, current.owner,
        "the current holder's claim is untouched"
    );
    assert!(matches!(
        p.claim(&key, "h1", Some(now_ms + 30_000), now_ms)
            .await
            .unwrap(),
        Seen::Busy { .. }
    ));

    // The current holder can still finish, and its result is what repeats replay.
    p.complete(&current, "{\"charge\":\"ch_2\"}".into(), now_ms / 1000)
        .await
        .unwrap();
    assert_eq!(
        p.claim(&key, "h1", Some(now_ms + 5_000), now_ms)
            .await
            .unwrap(),
        Seen::AlreadyDone("{\"charge\":\"ch_2\"}".into())
    );
}

/// The SDK retries a claim put whose answer was lost (a timeout after DynamoDB wrote
/// it). The retry's condition fails on our own record; without an owner the claim read
/// "someone else is working on it" and blocked itself for a whole visibility cycle.
#[tokio::test]
async fn a_claim_whose_first_put_landed_unacknowledged_is_still_ours() {
    let h = Harness::start().await;
    let p = protocol(&h);
    let key = format!("test#{}", new_key());
    let now_ms = Utc::now().timestamp_millis();
    let lost = LostFirstAnswer(p.store().clone());
    let claiming = Idempotency::new(lost);
    let Seen::New(claimed) = claiming
        .claim(&key, "h1", Some(now_ms + 5_000), now_ms)
        .await
        .unwrap()
    else {
        panic!("the claim whose put landed is ours");
    };
    claiming
        .complete(&claimed, "{\"sent\":true}".into(), now_ms / 1000)
        .await
        .unwrap();
    assert_eq!(
        p.claim(&key, "h1", Some(now_ms + 5_000), now_ms)
            .await
            .unwrap(),
        Seen::AlreadyDone("{\"sent\":true}".into())
    );
}

/// The real DynamoDB store, except that each put's answer is "condition failed" after
/// the write: what the SDK's retry of a put that landed, unacknowledged, answers.
struct LostFirstAnswer(DynamoDbIdempotencyStore);

impl IdempotencyStore for LostFirstAnswer {
    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, Failure> {
        self.0.get(key).await
    }

    async fn put_if_absent(
        &self,
        record: &IdempotencyRecord,
        now_epoch: i64,
    ) -> Result<PutIfAbsent, Failure> {
        assert_eq!(
            self.0.put_if_absent(record, now_epoch).await?,
            PutIfAbsent::Written
        );
        // The retry of the same put, as the SDK would send it.
        self.0.put_if_absent(record, now_epoch).await
    }

    async fn complete(
        &self,
        claimed: &IdempotencyRecord,
        done: &IdempotencyRecord,
    ) -> Result<(), Failure> {
        self.0.complete(claimed, done).await
    }

    async fn release(&self, claimed: &IdempotencyRecord) -> Result<(), Failure> {
        self.0.release(claimed).await
    }
}
