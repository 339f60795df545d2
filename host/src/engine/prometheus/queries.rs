//! The PromQL a [`super::PrometheusCollector`] runs, with documented presets for Kafka Streams
//! (the JMX exporter) and Flink (its Prometheus reporter), and the config form that overrides a
//! preset query by query.
//!
//! Placeholders: `{job}` is the scrape job's name, `{topic}` the input topic's (with `.` as
//! `_`, as Kafka writes topic tags), `{flink_topic}` the topic and `{job_name}` the engine's
//! job name as Flink's reporter escapes them (the job name is `.*` when none is configured). Per-instance queries must keep an `instance`
//! label: the Flink preset copies `tm_id` into it with `label_replace`, because the scrape
//! target's own `instance` (the reporter's port) is reused by whichever TaskManager binds it.

use serde::{Deserialize, Serialize};

/// The PromQL of a collector, resolved (every query set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queries {
    /// CPU of each instance, in cores (divided by `cores_per_instance` for the utilization).
    pub cpu: String,
    /// Records each instance processes per second.
    pub throughput: String,
    /// Alive stream threads (Flink: source subtasks) of each instance; 0 or absent: the
    /// instance is not processing.
    pub threads: String,
    /// Input partitions assigned to each instance (group membership after a rebalance).
    pub assigned: String,
    /// The job's total lag on the input topic, records (one series).
    pub lag: String,
}

/// A named set of default queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Kafka Streams through the Prometheus JMX exporter (1.0.1, `lowercaseOutputName`).
    #[default]
    KafkaStreams,
    /// Flink's Prometheus reporter (`PrometheusReporter`, Flink 2.x): one instance per
    /// TaskManager.
    Flink,
}

/// Queries as written in a config file: an optional preset and optional per-query overrides.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// The defaults to start from (default: the section's engine).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// Overrides [`Queries::cpu`].
    #[serde(default)]
    pub cpu: Option<String>,
    /// Overrides [`Queries::throughput`].
    #[serde(default)]
    pub throughput: Option<String>,
    /// Overrides [`Queries::threads`].
    #[serde(default)]
    pub threads: Option<String>,
    /// Overrides [`Queries::assigned`].
    #[serde(default)]
    pub assigned: Option<String>,
    /// Overrides [`Queries::lag`].
    #[serde(default)]
    pub lag: Option<String>,
}

impl QueryConfig {
    /// The queries: the preset (or `default` when none is named), then the overrides.
    pub fn resolve(&self, default: Preset) -> Queries {
        let base = Queries::preset(self.preset.unwrap_or(default));
        let pick = |o: &Option<String>, d: String| o.clone().unwrap_or(d);
        Queries {
            cpu: pick(&self.cpu, base.cpu),
            throughput: pick(&self.throughput, base.throughput),
            threads: pick(&self.threads, base.threads),
            assigned: pick(&self.assigned, base.assigned),
            lag: pick(&self.lag, base.lag),
        }
    }
}

impl Default for Queries {
    fn default() -> Self {
        Queries::kafka_streams()
    }
}

impl Queries {
    /// The queries of `preset`.
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::KafkaStreams => Queries::kafka_streams(),
            Preset::Flink => Queries::flink(),
        }
    }

    /// Kafka Streams through the JMX exporter: names are `<domain>_<type>_<attribute>` with the
    /// other bean keys as labels.
    ///
    /// - `cpu`: `rate(process_cpu_seconds_total[10s])`, the JVM's CPU in cores;
    /// - `throughput`: the records each instance's consumers took from the input topic, per
    ///   second: the rate of the per-topic `records-consumed-total` counter over 10 s (the
    ///   JMX exporter drops the `_total`; either name matches), in input records. (The stream
    ///   threads' `process-rate` counts every record every task processes, a repartitioned one
    ///   again, over a longer window.) An instance that runs a stream thread but has no such
    ///   series has consumed no input and reads 0;
    /// - `threads`: `alive-stream-threads`;
    /// - `assigned`: a consumer reports a per-partition lag only for the partitions it owns, so
    ///   counting those series per instance, for the input topic only (the app's repartition
    ///   topics are assigned too), is the group's assignment of the input;
    /// - `lag`: the sum of those per-partition lags. The restore consumers are excluded from
    ///   both: their lag is the changelog's, not the input's.
    pub fn kafka_streams() -> Self {
        Queries {
            cpu: "rate(process_cpu_seconds_total{job=\"{job}\"}[10s])".into(),
            throughput: "sum by (instance) (rate({__name__=~\"kafka_consumer_consumer_fetch_manager_metrics_records_consumed(_total)?\",job=\"{job}\",topic=\"{topic}\",client_id!~\".*restore-consumer\"}[10s])) or 0 * sum by (instance) (kafka_streams_stream_metrics_alive_stream_threads{job=\"{job}\"})".into(),
            threads: "sum by (instance) (kafka_streams_stream_metrics_alive_stream_threads{job=\"{job}\"})".into(),
            assigned: "count by (instance) (kafka_consumer_consumer_fetch_manager_metrics_records_lag{job=\"{job}\",topic=\"{topic}\",client_id!~\".*restore-consumer\"})".into(),
            lag: "sum(kafka_consumer_consumer_fetch_manager_metrics_records_lag{job=\"{job}\",topic=\"{topic}\",client_id!~\".*restore-consumer\"} >= 0)".into(),
        }
    }

    /// Flink's Prometheus reporter, one instance per TaskManager (`tm_id`, e.g.
    /// `127_0_0_1:45449_e2633b`). The reporter escapes every character outside
    /// `[a-zA-Z0-9:_]` in names and label values to `_`.
    ///
    /// - `cpu`: `rate(flink_taskmanager_Status_JVM_CPU_Time[10s])` (nanoseconds of CPU) / 1e9,
    ///   the TaskManager's CPU in cores (`Status_JVM_CPU_Load` is relative to all of the
    ///   machine's cores instead);
    /// - `throughput`: the rate of the source tasks' `numRecordsIn` (records read from the
    ///   input) summed per TaskManager; the counter, not the 60-s `numRecordsInPerSecond`
    ///   meter, so a rescale shows within seconds;
    /// - `threads`: the job's source subtasks deployed on each TaskManager;
    /// - `assigned`: the input partitions whose `currentOffset` each TaskManager reports;
    /// - `lag`: the sum of the source readers' `pendingRecords`.
    pub fn flink() -> Self {
        let by_tm =
            |q: &str| format!("label_replace({q}, \"instance\", \"$1\", \"tm_id\", \"(.*)\")");
        let source = "job=\"{job}\",job_name=~\"{job_name}\",task_name=~\"Source.*\"";
        Queries {
            cpu: by_tm(
                "sum by (tm_id) (rate(flink_taskmanager_Status_JVM_CPU_Time{job=\"{job}\"}[10s])) / 1e9",
            ),
            throughput: by_tm(&format!(
                "sum by (tm_id) (rate(flink_taskmanager_job_task_numRecordsIn{{{source}}}[10s]))"
            )),
            threads: by_tm(&format!(
                "count by (tm_id) (flink_taskmanager_job_task_numRecordsIn{{{source}}})"
            )),
            assigned: by_tm(
                "count by (tm_id) (flink_taskmanager_job_task_operator_KafkaSourceReader_topic_partition_currentOffset{job=\"{job}\",job_name=~\"{job_name}\",topic=\"{flink_topic}\"})",
            ),
            lag: "sum(flink_taskmanager_job_task_operator_pendingRecords{job=\"{job}\",job_name=~\"{job_name}\"})".into(),
        }
    }
}

/// A label value as Flink's Prometheus reporter writes it: every character outside
/// `[a-zA-Z0-9:_]` becomes `_`.
pub fn escape_label(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_on_top_of_the_preset() {
        let c: QueryConfig = toml::from_str("preset = \"flink\"\nlag = \"sum(my_lag)\"").unwrap();
        let q = c.resolve(Preset::KafkaStreams);
        assert_eq!(q.lag, "sum(my_lag)");
        assert_eq!(q.cpu, Queries::flink().cpu);
        // No preset named: the section's engine.
        let c: QueryConfig = toml::from_str("cpu = \"x\"").unwrap();
        assert_eq!(c.resolve(Preset::Flink).threads, Queries::flink().threads);
        assert_eq!(c.resolve(Preset::KafkaStreams).cpu, "x");
        assert!(toml::from_str::<QueryConfig>("preset = \"spark\"").is_err());
        assert!(toml::from_str::<QueryConfig>("cpus = \"x\"").is_err());
    }

    #[test]
    fn flink_names_are_escaped_and_every_per_instance_query_keeps_an_instance_label() {
        assert_eq!(escape_label("daedalus-wordcount"), "daedalus_wordcount");
        assert_eq!(
            escape_label("Source: source -> split"),
            "Source:_source____split"
        );
        let q = Queries::flink();
        for per_instance in [&q.cpu, &q.throughput, &q.threads, &q.assigned] {
            assert!(per_instance.starts_with("label_replace("), "{per_instance}");
            assert!(per_instance.contains("\"tm_id\""));
        }
    }
}
