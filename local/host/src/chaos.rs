//! At-least-once delivery at its worst, on purpose: the reliability runs make the local
//! SQS event source mappings deliver every message two or three times and shuffle every
//! batch, as SQS and SNS are allowed to (a standard queue may deliver a message more than
//! once, SNS may deliver a notification more than once, and neither keeps order).
//!
//! A copy is a new message with the same body and attributes (as SNS delivers a duplicate:
//! a different SQS message id, the same event inside), sent to the same queue while the
//! original is being handled, so original and copies race each other through different
//! batches and pollers. Copies are never copied again. The randomness is seeded, so a run
//! that found a problem can be repeated.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// How messages are delivered; the default is one delivery in the order received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryChaos {
    /// Deliver each message this many times in all, at most (each message gets a random
    /// number of copies from 1 to this; 1 or 0 means no copies).
    pub max_deliveries: usize,
    /// Shuffle the records of every batch.
    pub shuffle: bool,
    /// The seed of the random choices.
    pub seed: u64,
}

/// The shared state of a chaotic delivery: the choices and which messages are copies.
#[derive(Debug)]
pub struct Chaos {
    settings: DeliveryChaos,
    rng: Mutex<fastrand::Rng>,
    copies: Mutex<HashSet<String>>,
    copies_sent: AtomicUsize,
}

impl Chaos {
    /// Chaos with `settings`.
    pub fn new(settings: DeliveryChaos) -> Self {
        Self {
            settings,
            rng: Mutex::new(fastrand::Rng::with_seed(settings.seed)),
            copies: Mutex::new(HashSet::new()),
            copies_sent: AtomicUsize::new(0),
        }
    }

    /// Whether anything is changed at all.
    pub fn is_calm(&self) -> bool {
        self.settings.max_deliveries <= 1 && !self.settings.shuffle
    }

    /// How many copies to send of the message `message_id` (none of a copy).
    pub fn copies_of(&self, message_id: &str) -> usize {
        if self.settings.max_deliveries <= 1 || self.is_copy(message_id) {
            return 0;
        }
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .usize(1..self.settings.max_deliveries)
    }

    /// Remembers that `message_id` is a copy, so it is not copied again.
    pub fn record_copy(&self, message_id: String) {
        self.copies_sent.fetch_add(1, Ordering::Relaxed);
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(message_id);
    }

    fn is_copy(&self, message_id: &str) -> bool {
        self.copies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(message_id)
    }

    /// Shuffles a batch, if asked to.
    pub fn shuffle<T>(&self, batch: &mut [T]) {
        if self.settings.shuffle {
            self.rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .shuffle(batch);
        }
    }

    /// How many duplicate deliveries were sent so far.
    pub fn copies_sent(&self) -> usize {
        self.copies_sent.load(Ordering::Relaxed)
    }
}

impl Default for Chaos {
    fn default() -> Self {
        Self::new(DeliveryChaos::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calm_delivery_sends_no_copies() {
        let chaos = Chaos::default();
        assert!(chaos.is_calm());
        assert_eq!(chaos.copies_of("m-1"), 0);
    }

    #[test]
    fn every_original_gets_one_or_two_copies_and_copies_get_none() {
        let chaos = Chaos::new(DeliveryChaos {
            max_deliveries: 3,
            shuffle: true,
            seed: 7,
        });
        for i in 0..100 {
            let copies = chaos.copies_of(&format!("m-{i}"));
            assert!((1..=2).contains(&copies), "{copies} copies");
        }
        chaos.record_copy("copy-1".into());
        assert_eq!(chaos.copies_of("copy-1"), 0);
        assert_eq!(chaos.copies_sent(), 1);
    }
}
