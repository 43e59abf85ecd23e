//! Every event source mapping of a stack, driven together: the seed of the local host.
//!
//! Give it the functions (by logical id, as [`Invoke`]s) and it builds a poller for each
//! of their stream and queue mappings from the template, then polls round after round
//! until nothing moves any more.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;

use crate::invoke::Invoke;
use crate::queues::{QueuePoller, Redelivery};
use crate::streams::StreamPoller;
use emulator::provision::Stack;

/// Driving the pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Polling a stream failed.
    #[error(transparent)]
    Stream(#[from] crate::streams::StreamError),
    /// Polling a queue failed.
    #[error(transparent)]
    Queue(#[from] crate::queues::QueueError),
    /// Work was still moving at the deadline.
    #[error("the pipeline did not settle before the deadline ({rounds} rounds)")]
    Deadline {
        /// Rounds polled.
        rounds: usize,
    },
}

/// All pollers of a stack with their functions.
pub struct Pipeline {
    streams: Vec<(StreamPoller, Arc<dyn Invoke>)>,
    queues: Vec<(QueuePoller, Arc<dyn Invoke>)>,
}

impl Pipeline {
    /// Pollers for every mapping of `stack` whose function is in `functions`.
    pub fn new(
        config: &SdkConfig,
        stack: &Stack,
        functions: &HashMap<String, Arc<dyn Invoke>>,
    ) -> Pipeline {
        let streams = stack
            .stream_mappings()
            .into_iter()
            .filter_map(|m| {
                let function = functions.get(&m.function)?.clone();
                Some((StreamPoller::new(config, m), function))
            })
            .collect();
        let queues = stack
            .queue_mappings()
            .into_iter()
            .filter_map(|m| {
                let function = functions.get(&m.function)?.clone();
                // Tests drive the pipeline in rounds: a failed message is tried again
                // in the next round, not after the queue's visibility timeout.
                let poller =
                    QueuePoller::new(config, m).redelivery(Redelivery::After(Duration::ZERO));
                Some((poller, function))
            })
            .collect();
        Pipeline { streams, queues }
    }

    /// One round: every stream and queue polled once. Returns how many records moved.
    pub async fn poll_round(&mut self) -> Result<usize, PipelineError> {
        let mut moved = 0;
        for (poller, function) in &mut self.streams {
            let report = poller.poll_once(function.as_ref()).await?;
            moved += report.delivered + report.filtered_out;
        }
        for (poller, function) in &self.queues {
            moved += poller.poll_once(function.as_ref()).await?.delivered;
        }
        Ok(moved)
    }

    /// Polls until two rounds in a row move nothing, or fails at the deadline.
    pub async fn run_until_quiet(&mut self, deadline: Instant) -> Result<usize, PipelineError> {
        let mut rounds = 0;
        let mut quiet = 0;
        while quiet < 2 {
            if Instant::now() >= deadline {
                return Err(PipelineError::Deadline { rounds });
            }
            let moved = self.poll_round().await?;
            rounds += 1;
            if moved == 0 {
                quiet += 1;
                // Nothing to do: give slow deliveries (SNS fan-out) a moment.
                tokio::time::sleep(Duration::from_millis(50)).await;
            } else {
                quiet = 0;
            }
        }
        Ok(rounds)
    }
}
