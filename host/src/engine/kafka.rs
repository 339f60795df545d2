//! The job's input topic through the Kafka protocol (rskafka, pure Rust): the partitions' end
//! offsets (the arrival rate, and the lag against the consumer's positions), and a producer for
//! `loadgen`.
//!
//! A consumer group's committed offsets and membership are in `engine::consumer_group`
//! (rskafka lacks those APIs). A Flink job commits its offsets only with a checkpoint, so the
//! Flink collector takes the source reader's own per-partition positions instead (see
//! `engine::flink`).

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
        let client = client(bootstrap, &endpoint, timeout).await?;
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
        Ok(self.end_offsets().await?.values().sum())
    }

    /// Each partition's end offset.
    pub async fn end_offsets(&self) -> Result<BTreeMap<i32, i64>, EngineError> {
        self.offsets(OffsetAt::Latest).await
    }

    /// Each partition's first offset still in the log (after retention).
    pub async fn start_offsets(&self) -> Result<BTreeMap<i32, i64>, EngineError> {
        self.offsets(OffsetAt::Earliest).await
    }

    async fn offsets(&self, at: OffsetAt) -> Result<BTreeMap<i32, i64>, EngineError> {
        let endpoint = self.endpoint();
        let mut out = BTreeMap::new();
        for pc in &self.partitions {
            let offset = within(&endpoint, self.timeout, async {
                pc.get_offset(at)
                    .await
                    .map_err(|e| EngineError::Unreachable {
                        endpoint: endpoint.clone(),
                        detail: e.to_string(),
                    })
            })
            .await?;
            out.insert(pc.partition(), offset);
        }
        Ok(out)
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
        let client = client(bootstrap, &endpoint, timeout).await?;
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

/// A client for `bootstrap` whose retries end after `timeout`.
async fn client(bootstrap: &str, endpoint: &str, timeout: Duration) -> Result<Client, EngineError> {
    within(endpoint, timeout, async {
        ClientBuilder::new(vec![bootstrap.to_string()])
            .client_id("daedalus")
            .backoff_config(BackoffConfig {
                deadline: Some(timeout),
                ..BackoffConfig::default()
            })
            .build()
            .await
            .map_err(|e| EngineError::Unreachable {
                endpoint: endpoint.to_string(),
                detail: e.to_string(),
            })
    })
    .await
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

/// A job's input topic as the collector follows it: end offsets per partition, with a
/// reconnect after any failure and every [`InputTopic::REFRESH`] (so partitions added to the
/// topic are followed; [`InputTopic::with_refresh`] changes how often).
#[derive(Debug)]
pub struct InputTopic {
    bootstrap: String,
    topic: String,
    timeout: Duration,
    refresh: Duration,
    conn: tokio::sync::Mutex<Option<(KafkaTopic, crate::clock::Stopwatch)>>,
}

/// Records added between two per-partition offset snapshots, over the partitions both hold:
/// a partition seen for the first time (added to the topic, or its group's first commit) is
/// left out of that interval rather than counted whole. `None` when an offset went back (the
/// topic was recreated, or the offsets reset).
pub fn advanced(prev: &BTreeMap<i32, i64>, now: &BTreeMap<i32, i64>) -> Option<i64> {
    let mut sum = 0i64;
    for (p, n) in now {
        if let Some(b) = prev.get(p) {
            if n < b {
                return None;
            }
            sum = sum.saturating_add(n - b);
        }
    }
    Some(sum)
}

impl InputTopic {
    /// Follows `topic` on `bootstrap`; every broker call gives up after `timeout`.
    pub fn new(bootstrap: &str, topic: &str, timeout: Duration) -> Self {
        InputTopic {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            timeout,
            refresh: Self::REFRESH,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Reads the partition list again every `every` instead of every [`InputTopic::REFRESH`].
    pub fn with_refresh(mut self, every: Duration) -> Self {
        self.refresh = every;
        self
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// How often the partition list is read again, by default.
    pub const REFRESH: Duration = Duration::from_secs(60);

    /// Each partition's first offset still in the log (after retention).
    pub async fn start_offsets(&self) -> Result<BTreeMap<i32, i64>, EngineError> {
        self.offsets(OffsetAt::Earliest).await
    }

    /// Each partition's end offset now.
    pub async fn end_offsets(&self) -> Result<BTreeMap<i32, i64>, EngineError> {
        self.offsets(OffsetAt::Latest).await
    }

    /// Each partition's offset `at`, on the topic's connection (made again every refresh
    /// interval or after a failure).
    async fn offsets(&self, at: OffsetAt) -> Result<BTreeMap<i32, i64>, EngineError> {
        let mut conn = self.conn.lock().await;
        if conn
            .as_ref()
            .is_none_or(|(_, age)| age.elapsed() >= self.refresh)
        {
            let topic = KafkaTopic::connect(&self.bootstrap, &self.topic, self.timeout).await?;
            *conn = Some((topic, crate::clock::Stopwatch::start()));
        }
        match conn.as_ref().expect("set above").0.offsets(at).await {
            Ok(o) => Ok(o),
            Err(e) => {
                *conn = None;
                Err(e)
            }
        }
    }
}
