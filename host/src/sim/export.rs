//! Per-run data files beside the report: the per-second timeline as CSV and every decision with
//! its explanation as JSON lines, for plotting elsewhere and for reading why a policy acted.

use super::run::RunResult;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file-name-safe form of a policy name.
pub(crate) fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `DIR/<policy>.timeline.csv` and `DIR/<policy>.decisions.jsonl`; returns their paths.
pub fn write_run(dir: &Path, policy: &str, r: &RunResult) -> std::io::Result<(PathBuf, PathBuf)> {
    let tl = &r.timeline;
    let csv_path = dir.join(format!("{}.timeline.csv", slug(policy)));
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
    writeln!(
        csv,
        "second,input_records,processed_records,capacity_records_per_sec,parallelism,lag_records,latency_ms,rescaling"
    )?;
    for i in 0..tl.input.len() {
        writeln!(
            csv,
            "{i},{},{},{},{},{},{:.0},{}",
            tl.input[i],
            tl.processed[i],
            tl.capacity[i],
            tl.parallelism[i],
            tl.lag[i],
            tl.latency_ms[i],
            u8::from(tl.down[i])
        )?;
    }
    csv.flush()?;
    let jsonl_path = dir.join(format!("{}.decisions.jsonl", slug(policy)));
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(&jsonl_path)?);
    for d in &r.decisions {
        let line = serde_json::json!({
            "second": d.t,
            "action": d.decision.action,
            "reason": d.decision.explanation.reason,
            "metrics": d.decision.explanation.metrics,
            "error": d.error,
        });
        writeln!(jsonl, "{line}")?;
    }
    jsonl.flush()?;
    Ok((csv_path, jsonl_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Decision;
    use crate::sim::dynamics::Model;
    use crate::sim::profile::{Engine, JobProfile};
    use crate::sim::run::{RunConfig, run};
    use crate::sim::trace::Trace;

    #[test]
    fn writes_one_row_per_second_and_one_line_per_decision() {
        let model = Model::new(
            &JobProfile::default_for(Engine::Flink),
            &Trace::synthetic("constant:rate=1000,duration=35").unwrap(),
            1,
        );
        let mut hold = |_: &crate::model::DecisionInput| (Ok(Decision::hold("steady")), 0.0);
        let r = run(&model, &RunConfig::default(), &mut hold, &mut |_| {});
        let dir = tempfile::tempdir().unwrap();
        let (csv, jsonl) = write_run(dir.path(), "a b/c", &r).unwrap();
        assert!(csv.ends_with("a_b_c.timeline.csv"));
        assert_eq!(std::fs::read_to_string(csv).unwrap().lines().count(), 36);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(jsonl)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["second"], 10);
        assert_eq!(lines[0]["reason"], "steady");
    }
}
