//! [`Shipper`]: the durable queue, the reporting key that signs what enters it, the sender
//! that ships it, the backoff between failed sends, and the counters `GET /v1/metering` and
//! `/metrics` show. The collectors hand it claims; it owns everything after that.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use runpermit_permit::{SigningKey, UsageReportClaims};

use super::{COMPACT_AT_BYTES, CycleReport, Sender, unix_now};
use crate::queue::{Backoff, QueueError, ShipOutcome, UsageQueue};

/// The queue, the key, the sender and what shipping has done so far.
pub(crate) struct Shipper {
    pub(crate) queue: UsageQueue,
    pub(crate) queue_dir: PathBuf,
    key: SigningKey,
    pub(crate) send: Sender,
    pub(crate) backoff: Backoff,
    /// Reports dead-lettered (those in the queue when it opened, and since).
    pub(crate) dead_letters: usize,
    /// Reports acknowledged since the gate started.
    pub(crate) delivered: u64,
    /// When the authority last acknowledged a report (unix seconds).
    pub(crate) last_delivery: Option<i64>,
    /// While backing off after a failed send: when the next try is due.
    pub(crate) retry_at: Option<Instant>,
}

impl Shipper {
    /// A shipper over the opened `queue` (in `queue_dir`), signing with `key`, sending with
    /// `send`; backs off from 1 s, doubling up to 5 min.
    pub(crate) fn new(
        queue: UsageQueue,
        queue_dir: PathBuf,
        key: SigningKey,
        send: Sender,
    ) -> Result<Shipper, QueueError> {
        let dead_letters = queue.dead_letters()?.len();
        Ok(Shipper {
            queue,
            queue_dir,
            key,
            send,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            dead_letters,
            delivered: 0,
            last_delivery: None,
            retry_at: None,
        })
    }

    /// Signs and enqueues one report, durably; `source` makes it exactly-once (a report
    /// already enqueued under that source key is not enqueued again: `Ok(None)`).
    pub(crate) fn enqueue(
        &mut self,
        claims: UsageReportClaims,
        source: Option<&str>,
        report: &mut CycleReport,
    ) -> Result<Option<u64>, QueueError> {
        let run = claims.sub.clone();
        let seq = match source {
            Some(src) => self.queue.enqueue_once(claims, &self.key, src)?,
            None => Some(self.queue.enqueue(claims, &self.key)?),
        };
        if let Some(seq) = seq {
            report.enqueued.push((run, seq));
        }
        Ok(seq)
    }

    /// Sends the pending reports in order (unless backing off until after `now`): acked on
    /// success, dead-lettered when refused for good; compacts the journal when it is large.
    pub(crate) fn ship(&mut self, now: Instant) -> Result<ShipOutcome, QueueError> {
        let outcome = self.queue.ship(&mut self.send, &mut self.backoff, now)?;
        self.retry_at = outcome.retry_at;
        self.dead_letters += outcome.dead_lettered;
        self.delivered += outcome.delivered as u64;
        if outcome.delivered > 0 {
            self.last_delivery = Some(unix_now());
        }
        if outcome.delivered > 0 || outcome.dead_lettered > 0 {
            tracing::info!(
                delivered = outcome.delivered,
                dead_lettered = outcome.dead_lettered,
                pending = outcome.pending,
                "usage reports shipped"
            );
        }
        if self.queue.journal_bytes() > COMPACT_AT_BYTES {
            self.queue.compact()?;
        }
        Ok(outcome)
    }
}
