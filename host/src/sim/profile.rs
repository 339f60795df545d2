//! Job profiles: what the simulated job is like (TOML, every key documented, every key optional
//! except where noted). The bundled defaults live in `host/profiles/{flink,kafka-streams}.toml`.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The bundled Flink profile.
pub const FLINK_DEFAULT: &str = include_str!("../../profiles/flink.toml");
/// The bundled Kafka Streams profile.
pub const KAFKA_STREAMS_DEFAULT: &str = include_str!("../../profiles/kafka-streams.toml");

/// Which engine's rescale behaviour to model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// Flink: a rescale stops the job for a downtime and replays records since the last
    /// checkpoint; useful source parallelism is capped at the partitions, keyed operators at
    /// the key groups.
    Flink,
    /// Kafka Streams: a rescale pauses processing for a rebalance and replays records since the
    /// last commit; useful instances are capped at the partition count.
    KafkaStreams,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Flink => "flink",
            Engine::KafkaStreams => "kafka-streams",
        })
    }
}

/// One operator of the simulated pipeline (listed source first; each feeds the next).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorProfile {
    /// Operator id as policies see it. Required.
    pub id: String,
    /// Records of its *input* one instance processes per second at 100% busy. Required.
    pub capacity_per_instance: f64,
    /// Output records per input record. Default 1.0.
    #[serde(default = "one")]
    pub selectivity: f64,
    /// Whether the operator is keyed (its useful parallelism is capped at `key_groups`).
    /// Default false.
    #[serde(default)]
    pub keyed: bool,
}

/// A simulated job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobProfile {
    /// Profile name. Default "job".
    #[serde(default = "default_name")]
    pub name: String,
    /// Engine whose rescale behaviour is modelled. Required.
    pub engine: Engine,
    /// Parallelism at the start. Default 1.
    #[serde(default = "one_u32")]
    pub initial_parallelism: u32,
    /// Smallest parallelism the host applies. Default 1.
    #[serde(default = "one_u32")]
    pub min_parallelism: u32,
    /// Largest parallelism the host applies. Default 18 (the paper's maximum scale-out).
    #[serde(default = "default_max_parallelism")]
    pub max_parallelism: u32,
    /// Input topic partitions: useful source instances (all instances for Kafka Streams) are
    /// capped here. Default 24.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Key groups (Flink max parallelism): useful keyed instances are capped here. Default 128.
    #[serde(default = "default_key_groups")]
    pub key_groups: u32,
    /// The pipeline, source first. Required, at least one operator.
    pub operators: Vec<OperatorProfile>,
    /// USL contention coefficient sigma: speedup(n) = n / (1 + sigma (n-1) + kappa n (n-1)).
    /// Default 0.03.
    #[serde(default = "default_sigma")]
    pub usl_sigma: f64,
    /// USL coherency coefficient kappa. Default 0.0002.
    #[serde(default = "default_kappa")]
    pub usl_kappa: f64,
    /// Spread of load between workers (std-dev of per-worker weights around 1). The hottest
    /// worker saturates first, so skew lowers job capacity. Default 0.15.
    #[serde(default = "default_skew")]
    pub worker_skew: f64,
    /// CPU utilization of an idle worker, fraction. Default 0.05.
    #[serde(default = "default_idle_cpu")]
    pub idle_cpu: f64,
    /// Relative std-dev of metric noise (CPU, throughput, busy ratio). Default 0.02.
    #[serde(default = "default_noise")]
    pub metric_noise: f64,
    /// Probability that any one metric sample is missing. Default 0.0.
    #[serde(default)]
    pub missing_sample_probability: f64,
    /// Downtime of a scale-up, seconds. Default: flink 30, kafka-streams 20.
    pub scale_up_downtime_s: Option<f64>,
    /// Downtime of a scale-down, seconds. Default: flink 15, kafka-streams 20.
    pub scale_down_downtime_s: Option<f64>,
    /// Relative jitter of downtimes: each downtime is scaled by 1 + U(-j, j). Default 0.2.
    #[serde(default = "default_jitter")]
    pub downtime_jitter: f64,
    /// Checkpoint (Flink) or commit (Kafka Streams) interval, seconds: records processed since
    /// the last one are replayed after a rescale. Default 10.
    #[serde(default = "default_checkpoint")]
    pub checkpoint_interval_s: u32,
    /// Processing time of a record with no queue, milliseconds. Default 50.
    #[serde(default = "default_processing_ms")]
    pub processing_latency_ms: f64,
    /// Latency objective, milliseconds: seconds above it count as SLO violations. Default 60000
    /// (a Flink rescale alone stops processing for ~30 s, so tighter objectives cannot be met
    /// by any schedule that rescales).
    #[serde(default = "default_slo")]
    pub slo_latency_ms: f64,
}

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn default_name() -> String {
    "job".into()
}
fn default_max_parallelism() -> u32 {
    18
}
fn default_partitions() -> u32 {
    24
}
fn default_key_groups() -> u32 {
    128
}
fn default_sigma() -> f64 {
    0.03
}
fn default_kappa() -> f64 {
    0.0002
}
fn default_skew() -> f64 {
    0.15
}
fn default_idle_cpu() -> f64 {
    0.05
}
fn default_noise() -> f64 {
    0.02
}
fn default_jitter() -> f64 {
    0.2
}
fn default_checkpoint() -> u32 {
    10
}
fn default_processing_ms() -> f64 {
    50.0
}
fn default_slo() -> f64 {
    60000.0
}

/// Why a profile is unusable.
#[derive(Debug, thiserror::Error)]
#[error("profile {origin}: {detail}")]
pub struct ProfileError {
    origin: String,
    detail: String,
}

impl JobProfile {
    /// The latency objective a simulated operator hands its policy: the SLO, whole ms.
    pub fn latency_objective_ms(&self) -> u64 {
        self.slo_latency_ms.round().max(1.0) as u64
    }

    /// The bundled default for `engine`.
    pub fn default_for(engine: Engine) -> JobProfile {
        let text = match engine {
            Engine::Flink => FLINK_DEFAULT,
            Engine::KafkaStreams => KAFKA_STREAMS_DEFAULT,
        };
        JobProfile::parse(text, "bundled").expect("the bundled profiles are valid (tested)")
    }

    /// Reads a profile file.
    pub fn from_file(path: &Path) -> Result<JobProfile, ProfileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            origin: origin.clone(),
            detail: e.to_string(),
        })?;
        JobProfile::parse(&text, &origin)
    }

    /// This profile with a job's bounds (the initial parallelism moved within them) and, when
    /// given, its latency objective as the SLO: a replay of a live job under its own limits.
    pub fn for_job(
        mut self,
        min_parallelism: u32,
        max_parallelism: u32,
        latency_objective_secs: Option<f64>,
    ) -> Result<JobProfile, ProfileError> {
        self.min_parallelism = min_parallelism;
        self.max_parallelism = max_parallelism;
        self.initial_parallelism = self
            .initial_parallelism
            .clamp(min_parallelism, max_parallelism.max(min_parallelism));
        if let Some(s) = latency_objective_secs {
            self.slo_latency_ms = s * 1000.0;
        }
        self.validate().map_err(|detail| ProfileError {
            origin: format!("{} with the job's bounds", self.name),
            detail,
        })?;
        Ok(self)
    }

    /// Parses and validates profile TOML.
    pub fn parse(text: &str, origin: &str) -> Result<JobProfile, ProfileError> {
        let err = |detail: String| ProfileError {
            origin: origin.to_string(),
            detail,
        };
        let p: JobProfile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        p.validate().map_err(err)?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), String> {
        let finite_pos = |v: f64, what: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} must be > 0, got {v}"))
            }
        };
        let fraction = |v: f64, what: &str| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} must be in [0, 1], got {v}"))
            }
        };
        if self.operators.is_empty() {
            return Err("at least one operator is required".into());
        }
        for op in &self.operators {
            finite_pos(
                op.capacity_per_instance,
                &format!("operator {} capacity_per_instance", op.id),
            )?;
            finite_pos(op.selectivity, &format!("operator {} selectivity", op.id))?;
        }
        if self.min_parallelism == 0 || self.min_parallelism > self.max_parallelism {
            return Err(format!(
                "need 1 <= min_parallelism ({}) <= max_parallelism ({})",
                self.min_parallelism, self.max_parallelism
            ));
        }
        if !(self.min_parallelism..=self.max_parallelism).contains(&self.initial_parallelism) {
            return Err("initial_parallelism must lie within [min, max]".into());
        }
        if self.max_parallelism > 1024 || self.partitions == 0 || self.key_groups == 0 {
            return Err("max_parallelism must be <= 1024 and partitions, key_groups > 0".into());
        }
        if !(self.usl_sigma >= 0.0
            && self.usl_sigma < 1.0
            && self.usl_kappa >= 0.0
            && self.usl_kappa < 1.0)
        {
            return Err("usl_sigma and usl_kappa must be in [0, 1)".into());
        }
        fraction(self.idle_cpu, "idle_cpu")?;
        fraction(
            self.missing_sample_probability,
            "missing_sample_probability",
        )?;
        fraction(self.downtime_jitter, "downtime_jitter")?;
        if !(self.worker_skew >= 0.0
            && self.worker_skew <= 1.0
            && self.metric_noise >= 0.0
            && self.metric_noise <= 1.0)
        {
            return Err("worker_skew and metric_noise must be in [0, 1]".into());
        }
        for (v, what) in [
            (self.scale_up_downtime_s, "scale_up_downtime_s"),
            (self.scale_down_downtime_s, "scale_down_downtime_s"),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && (0.0..=3600.0).contains(&v))
            {
                return Err(format!("{what} must be in [0, 3600]"));
            }
        }
        if self.checkpoint_interval_s == 0 {
            return Err("checkpoint_interval_s must be > 0".into());
        }
        finite_pos(self.slo_latency_ms, "slo_latency_ms")?;
        if !(self.processing_latency_ms.is_finite() && self.processing_latency_ms >= 0.0) {
            return Err("processing_latency_ms must be >= 0".into());
        }
        Ok(())
    }

    /// Scale-up downtime, seconds.
    pub fn up_downtime_s(&self) -> f64 {
        self.scale_up_downtime_s.unwrap_or(match self.engine {
            Engine::Flink => 30.0,
            Engine::KafkaStreams => 20.0,
        })
    }

    /// Scale-down downtime, seconds.
    pub fn down_downtime_s(&self) -> f64 {
        self.scale_down_downtime_s.unwrap_or(match self.engine {
            Engine::Flink => 15.0,
            Engine::KafkaStreams => 20.0,
        })
    }

    /// USL speedup of `n` instances.
    pub fn speedup(&self, n: u32) -> f64 {
        let n = f64::from(n);
        n / (1.0 + self.usl_sigma * (n - 1.0) + self.usl_kappa * n * (n - 1.0))
    }

    /// Instances of operator `i` that do useful work at parallelism `p`.
    pub fn useful_instances(&self, i: usize, p: u32) -> u32 {
        let op = &self.operators[i];
        let cap = match self.engine {
            Engine::KafkaStreams => self.partitions,
            Engine::Flink if i == 0 => self.partitions,
            Engine::Flink if op.keyed => self.key_groups,
            Engine::Flink => u32::MAX,
        };
        p.min(cap)
    }

    /// Max parallelism policies are told for operator `i` (0 = unbounded).
    pub fn operator_max_parallelism(&self, i: usize) -> u32 {
        match self.engine {
            Engine::KafkaStreams => self.partitions,
            Engine::Flink if i == 0 => self.partitions,
            Engine::Flink if self.operators[i].keyed => self.key_groups,
            Engine::Flink => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_takes_a_jobs_bounds_and_objective() {
        let p = JobProfile::default_for(Engine::Flink)
            .for_job(2, 4, Some(30.0))
            .unwrap();
        assert_eq!((p.min_parallelism, p.max_parallelism), (2, 4));
        assert!((2..=4).contains(&p.initial_parallelism));
        assert_eq!(p.slo_latency_ms, 30_000.0);
        let kept = JobProfile::default_for(Engine::Flink).slo_latency_ms;
        let p = JobProfile::default_for(Engine::Flink)
            .for_job(1, 8, None)
            .unwrap();
        assert_eq!(p.slo_latency_ms, kept);
        assert!(
            JobProfile::default_for(Engine::Flink)
                .for_job(1, 5000, None)
                .is_err()
        );
    }

    #[test]
    fn bundled_profiles_are_valid() {
        let f = JobProfile::default_for(Engine::Flink);
        assert_eq!(f.engine, Engine::Flink);
        let k = JobProfile::default_for(Engine::KafkaStreams);
        assert_eq!(k.engine, Engine::KafkaStreams);
        assert!(f.speedup(10) < 10.0 && f.speedup(10) > 1.0);
        assert_eq!(k.useful_instances(0, 100), k.partitions);
    }

    #[test]
    fn bad_profiles_are_explained() {
        for (text, want) in [
            ("engine = \"spark\"\noperators = []", "unknown variant"),
            (
                "engine = \"flink\"\noperators = []",
                "at least one operator",
            ),
            (
                "engine = \"flink\"\nmin_parallelism = 5\nmax_parallelism = 2\n[[operators]]\nid = \"a\"\ncapacity_per_instance = 1.0",
                "min_parallelism",
            ),
            (
                "engine = \"flink\"\n[[operators]]\nid = \"a\"\ncapacity_per_instance = -1.0",
                "capacity_per_instance",
            ),
            (
                "engine = \"flink\"\ntypo = 1\n[[operators]]\nid = \"a\"\ncapacity_per_instance = 1.0",
                "unknown field",
            ),
        ] {
            let e = JobProfile::parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
