//! The job's input topic through the Kafka protocol (rskafka, pure Rust): the arrival rate
//! from the partitions' end offsets, and a producer for `loadgen`.
//!
//! Consumer-group lag needs the group's committed offsets, which rskafka cannot fetch; for
//! Flink the source's `pendingRecords` (the Kafka connector's own lag gauge) is used instead.

use crate::engine::EngineError;
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use rskafka::{BackoffConfig, chrono};
use std::collections::BTreeMap;
use std::time::Duration;

/// A connection to one topic's partitions.
pub struct KafkaTopic {
    bootstrap: String,
    topic: String,
    timeout: Duration,
    client: Client,
    partitions: Vec<PartitionClient>,
}

impl std::fmt::Debug for KafkaTopic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTopic")
            .field("bootstrap", &self.bootstrap)
            .field("topic", &self.topic)
            .field("partitions", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

impl KafkaTopic {
    /// Connects to `bootstrap` (`host:port`) and opens every partition of `topic`. Each broker
    /// call gives up after `timeout`.
    pub async fn connect(
        bootstrap: &str,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, EngineError> {
        let endpoint = format!("kafka://{bootstrap}/{topic}");
        let fail = |detail: String| EngineError::Unreachable {
            endpoint: endpoint.clone(),
            detail,
        };
        let client = within(&endpoint, timeout, async {
            ClientBuilder::new(vec![bootstrap.to_string()])
                .client_id("daedalus")
                .backoff_config(BackoffConfig {
                    deadline: Some(timeout),
                    ..BackoffConfig::default()
                })
                .build()
                .await
                .map_err(|e| fail(e.to_string()))
        })
        .await?;
        let topics = within(&endpoint, timeout, async {
            client.list_topics().await.map_err(|e| fail(e.to_string()))
        })
        .await?;
        let Some(t) = topics.into_iter().find(|t| t.name == topic) else {
            return Err(EngineError::Other(format!(
                "topic {topic:?} does not exist on {bootstrap}"
            )));
        };
        let mut partitions = Vec::new();
        for p in t.partitions {
            let pc = within(&endpoint, timeout, async {
                client
                    .partition_client(topic, p, UnknownTopicHandling::Error)
                    .await
                    .map_err(|e| fail(e.to_string()))
            })
            .await?;
            partitions.push(pc);
        }
        Ok(KafkaTopic {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            timeout,
            client,
            partitions,
        })
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    fn endpoint(&self) -> String {
        format!("kafka://{}/{}", self.bootstrap, self.topic)
    }

    /// Sum of the partitions' end offsets: every record ever written to the topic.
    pub async fn end_offset_total(&self) -> Result<i64, EngineError> {
        let endpoint = self.endpoint();
        let mut total = 0;
        for pc in &self.partitions {
            total += within(&endpoint, self.timeout, async {
                pc.get_offset(OffsetAt::Latest)
                    .await
                    .map_err(|e| EngineError::Unreachable {
                        endpoint: endpoint.clone(),
                        detail: e.to_string(),
                    })
            })
            .await?;
        }
        Ok(total)
    }

    /// Writes `values` as records, spread over the partitions starting at `first_partition`.
    pub async fn produce(
        &self,
        values: Vec<Vec<u8>>,
        first_partition: usize,
    ) -> Result<(), EngineError> {
        if self.partitions.is_empty() {
            return Err(EngineError::Other(format!(
                "topic {:?} has no partitions",
                self.topic
            )));
        }
        let endpoint = self.endpoint();
        let n = self.partitions.len();
        let now = chrono::DateTime::from_timestamp_millis(crate::clock::unix_now_ms() as i64)
            .unwrap_or_default();
        let mut per: Vec<Vec<Record>> = vec![Vec::new(); n];
        for (i, v) in values.into_iter().enumerate() {
            per[(first_partition + i) % n].push(Record {
                key: None,
                value: Some(v),
                headers: BTreeMap::new(),
                timestamp: now,
            });
        }
        for (pc, records) in self.partitions.iter().zip(per) {
            if records.is_empty() {
                continue;
            }
            within(&endpoint, self.timeout, async {
                pc.produce(records, Compression::NoCompression)
                    .await
                    .map_err(|e| EngineError::Other(format!("{endpoint}: produce failed: {e}")))
            })
            .await?;
        }
        Ok(())
    }

    /// Creates `topic` with `partitions` partitions unless it exists.
    pub async fn ensure_topic(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        let endpoint = format!("kafka://{bootstrap}");
        let fail = |detail: String| EngineError::Unreachable {
            endpoint: endpoint.clone(),
            detail,
        };
        let client = within(&endpoint, timeout, async {
            ClientBuilder::new(vec![bootstrap.to_string()])
                .backoff_config(BackoffConfig {
                    deadline: Some(timeout),
                    ..BackoffConfig::default()
                })
                .build()
                .await
                .map_err(|e| fail(e.to_string()))
        })
        .await?;
        let exists = client
            .list_topics()
            .await
            .map_err(|e| fail(e.to_string()))?
            .iter()
            .any(|t| t.name == topic);
        if !exists {
            let ctl = client
                .controller_client()
                .map_err(|e| fail(e.to_string()))?;
            ctl.create_topic(topic, partitions, 1, timeout.as_millis() as i32)
                .await
                .map_err(|e| EngineError::Other(format!("cannot create topic {topic:?}: {e}")))?;
        }
        Ok(())
    }

    /// The underlying client (for tests and tools).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

async fn within<T>(
    endpoint: &str,
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| {
            Err(EngineError::Timeout {
                endpoint: endpoint.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            })
        })
}

/// The arrival rate of a topic, from end-offset deltas between samples. Reconnects after a
/// failure; the first sample after a (re)connect has no rate yet.
#[derive(Debug)]
pub struct ArrivalRate {
    bootstrap: String,
    topic: String,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<KafkaTopic>>,
    last: std::sync::Mutex<Option<(u64, i64)>>,
}

impl ArrivalRate {
    /// Follows `topic` on `bootstrap`.
    pub fn new(bootstrap: &str, topic: &str, timeout: Duration) -> Self {
        ArrivalRate {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            timeout,
            conn: tokio::sync::Mutex::new(None),
            last: std::sync::Mutex::new(None),
        }
    }

    /// Samples the end offsets at `now_ms`; the rate since the previous sample (records/s).
    pub async fn sample(&self, now_ms: u64) -> Result<Option<f64>, EngineError> {
        let mut conn = self.conn.lock().await;
        if conn.is_none() {
            *conn = Some(KafkaTopic::connect(&self.bootstrap, &self.topic, self.timeout).await?);
            *self.last.lock().expect("no panics while held") = None;
        }
        let total = match conn.as_ref().expect("set above").end_offset_total().await {
            Ok(t) => t,
            Err(e) => {
                *conn = None;
                return Err(e);
            }
        };
        let mut last = self.last.lock().expect("no panics while held");
        let rate = match *last {
            Some((t, n)) if now_ms > t && total >= n => {
                Some((total - n) as f64 * 1000.0 / (now_ms - t) as f64)
            }
            _ => None,
        };
        *last = Some((now_ms, total));
        Ok(rate)
    }
}
