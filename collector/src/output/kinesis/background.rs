//! Background checks: the shard map refresher, which is also the readiness probe of the modes
//! that use ListShards.
//!
//! Invariants: the map is asked for again every `shard_refresh`, at once when a sender saw a
//! shard it does not know (a reshard), and every second while there is none yet; a failed
//! ListShards keeps the current map and marks the output not ready with the reason, a successful
//! one marks it ready. Modes without a shard map have no probe: their readiness follows their
//! PutRecords calls.

use super::api::{Fault, KinesisApi};
use super::deliver::OUTPUT_NAME;
use super::outage::Outage;
use super::partition::{ShardMap, SharedShardMap};
use crate::health::Delivery;
use crate::logging::ratelimit::Every;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Without a map yet, ListShards is asked again after this long.
const RETRY_WITHOUT_MAP: Duration = Duration::from_secs(1);

/// What the refresher needs.
pub struct Refresher {
    pub api: Arc<dyn KinesisApi>,
    pub stream: String,
    pub shards: Arc<SharedShardMap>,
    pub every: Duration,
    pub delivery: Arc<Delivery>,
    pub metrics: Arc<Metrics>,
    /// Woken when ListShards is answered: the stream is back.
    pub outage: Arc<Outage>,
}

/// The reason `/readyz` gives for a failed ListShards.
pub fn list_shards_problem(e: &super::api::CallError) -> String {
    let hint = match e.fault {
        Fault::AccessDenied => " (the credentials need kinesis:ListShards on the stream)",
        _ => "",
    };
    format!("Kinesis {}: ListShards: {e}{hint}", e.fault.name())
}

impl Refresher {
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let warnings = Every::default();
            loop {
                let wait = if self.shards.get().is_empty() {
                    self.every.min(RETRY_WITHOUT_MAP)
                } else {
                    self.every
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.shards.stale() => {}
                }
                match self.api.list_shards(&self.stream).await {
                    Ok(list) if !list.is_empty() => {
                        self.outage.back();
                        self.delivery.clear(OUTPUT_NAME);
                        let map = ShardMap::new(list);
                        self.metrics.output_shard_refreshes.inc();
                        if *self.shards.get() != map {
                            tracing::info!(
                                open_shards = map.len(),
                                "the stream's shards changed; spreading over the new ones"
                            );
                            self.shards.set(map);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if e.fault != Fault::Throttled {
                            self.delivery
                                .set_problem(OUTPUT_NAME, list_shards_problem(&e));
                        }
                        if warnings.allow() {
                            tracing::warn!(error = %e, "ListShards failed; keeping the current shard map");
                        }
                    }
                }
            }
        })
    }
}
