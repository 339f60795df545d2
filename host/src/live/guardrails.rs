//! Guardrails the host applies after every decision, whatever the policy proposed: bounds,
//! maximum step up and down, alignment to a partition or key-group count, delayed and merged
//! scale-down, cooldown, freeze windows and a daily rescale budget. Each guard that changed the
//! proposal is named in the verdict; the loop records the names with the decision and shows
//! them to the policy on the next tick (`previous.clamped-by`).
//!
//! Pure: no clock, no I/O. The mutable part ([`GuardState`]) is serialisable so the host can
//! keep it across restarts.
//!
//! ```toml
//! [jobs.guardrails]
//! max_step_up = 4              # at most +4 per rescale, per operator (default: unlimited)
//! max_step_down = 2            # at most -2 per rescale (default: unlimited)
//! align_to_divisors_of = 12    # round to a divisor of 12 (partitions, key groups) (default: off)
//! scale_down_delay_secs = 300  # a scale-down waits this long; the highest target proposed
//!                              # meanwhile is applied (default 0)
//! cooldown_secs = 120          # no rescale this long after the last one (default 0; waits <= 30 days)
//! max_rescales_per_day = 24    # rolling 24 h budget (default: unlimited)
//! freeze = [{ start = "22:00", end = "02:00" }]  # UTC, daily; no rescale inside (default none)
//! ```

use crate::model::Bounds;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The guardrails of one job (see the module docs for the TOML form and defaults).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Guardrails {
    /// Largest increase per rescale, per operator.
    #[serde(default)]
    pub max_step_up: Option<u32>,
    /// Largest decrease per rescale, per operator.
    #[serde(default)]
    pub max_step_down: Option<u32>,
    /// Targets are rounded to a divisor of this number (e.g. the input partitions, or Flink's
    /// max parallelism / key groups), so work spreads evenly.
    #[serde(default)]
    pub align_to_divisors_of: Option<u32>,
    /// Seconds a scale-down must keep being proposed before it is applied; the highest target
    /// proposed in that time is the one applied.
    #[serde(default)]
    pub scale_down_delay_secs: u64,
    /// Seconds after a rescale during which no other is made.
    #[serde(default)]
    pub cooldown_secs: u64,
    /// Rescales allowed in any 24 h.
    #[serde(default)]
    pub max_rescales_per_day: Option<u32>,
    /// Daily UTC windows without rescales.
    #[serde(default)]
    pub freeze: Vec<FreezeWindow>,
    /// Most useful parallelism, set by the connector (a Kafka Streams job cannot use more
    /// instances than its input has partitions); a proposal above it is clamped as
    /// `partitions`.
    #[serde(skip)]
    pub partition_cap: Option<u32>,
}

/// The longest `cooldown_secs` or `scale_down_delay_secs` accepted: 30 days.
pub const MAX_WAIT_SECS: u64 = 30 * 86_400;

/// A daily window, `HH:MM` UTC; `end` before `start` wraps past midnight.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeWindow {
    /// Start, `HH:MM` UTC (inclusive).
    pub start: String,
    /// End, `HH:MM` UTC (exclusive).
    pub end: String,
}

/// What the guardrails remember between decisions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct GuardState {
    /// When the last rescale was applied or finished, ms.
    pub last_rescale_ms: Option<u64>,
    /// Start times of the rescales in the last 24 h, ms.
    pub recent_rescales_ms: Vec<u64>,
    /// Since when a scale-down has been proposed without interruption, ms.
    pub scale_down_since_ms: Option<u64>,
    /// The highest per-operator targets proposed since then.
    pub scale_down_merged: BTreeMap<String, u32>,
}

/// The guarded targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Per-operator targets (the job-level key `""` when the job reports no operators).
    pub targets: BTreeMap<String, u32>,
    /// Names of the guards that changed the proposal, in the order they acted.
    pub clamped_by: Vec<String>,
}

impl Verdict {
    /// Job-level parallelism: the largest target.
    pub fn job(&self) -> u32 {
        self.targets.values().copied().max().unwrap_or(1)
    }
}

const DAY_MS: u64 = 24 * 3600 * 1000;

fn minutes(hhmm: &str) -> anyhow::Result<u32> {
    let (h, m) = hhmm
        .split_once(':')
        .with_context(|| format!("{hhmm:?} is not HH:MM"))?;
    let (h, m): (u32, u32) = (
        h.parse().with_context(|| format!("{hhmm:?}: bad hour"))?,
        m.parse().with_context(|| format!("{hhmm:?}: bad minute"))?,
    );
    if h > 23 || m > 59 {
        bail!("{hhmm:?} is not a time of day");
    }
    Ok(h * 60 + m)
}

impl FreezeWindow {
    fn contains(&self, now_ms: u64) -> bool {
        let (Ok(s), Ok(e)) = (minutes(&self.start), minutes(&self.end)) else {
            return false;
        };
        let m = ((now_ms % DAY_MS) / 60_000) as u32;
        if s <= e {
            (s..e).contains(&m)
        } else {
            m >= s || m < e
        }
    }
}

fn push(clamped: &mut Vec<String>, name: &str) {
    if !clamped.iter().any(|c| c == name) {
        clamped.push(name.to_string());
    }
}

impl Guardrails {
    /// Checks the settings; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_step_up == Some(0) {
            bail!("max_step_up: must be at least 1 (leave it out for no limit)");
        }
        if self.max_step_down == Some(0) {
            bail!("max_step_down: must be at least 1 (leave it out for no limit)");
        }
        if self.align_to_divisors_of == Some(0) {
            bail!("align_to_divisors_of: must be at least 1");
        }
        if self.max_rescales_per_day == Some(0) {
            bail!("max_rescales_per_day: must be at least 1 (use dry_run to stop rescaling)");
        }
        for (key, secs) in [
            ("scale_down_delay_secs", self.scale_down_delay_secs),
            ("cooldown_secs", self.cooldown_secs),
        ] {
            if secs > MAX_WAIT_SECS {
                bail!("{key}: {secs} is more than {MAX_WAIT_SECS} s (30 days)");
            }
        }
        for (i, w) in self.freeze.iter().enumerate() {
            minutes(&w.start).with_context(|| format!("freeze[{i}].start"))?;
            minutes(&w.end).with_context(|| format!("freeze[{i}].end"))?;
        }
        Ok(())
    }

    /// The value nearest `want` that the bounds, step limits and alignment allow from `cur`.
    fn guard_value(&self, bounds: Bounds, cur: u32, want: u32, clamped: &mut Vec<String>) -> u32 {
        let mut lo = bounds.min_parallelism;
        let mut hi = bounds.max_parallelism;
        let mut bounded = want.clamp(lo, hi);
        if bounded != want {
            push(clamped, "bounds");
        }
        if let Some(cap) = self.partition_cap
            && cap >= lo
        {
            // The cap bounds every later step too (alignment searches up to `hi`).
            hi = hi.min(cap);
            if bounded > cap {
                bounded = cap;
                push(clamped, "partitions");
            }
        }
        if let Some(s) = self.max_step_up {
            hi = hi.min(cur.saturating_add(s)).max(lo);
        }
        if let Some(s) = self.max_step_down {
            lo = lo.max(cur.saturating_sub(s)).min(hi);
        }
        let stepped = bounded.clamp(lo, hi);
        if stepped != bounded {
            push(
                clamped,
                if stepped < bounded {
                    "max-step-up"
                } else {
                    "max-step-down"
                },
            );
        }
        let Some(n) = self.align_to_divisors_of else {
            return stepped;
        };
        if stepped == cur || n % stepped == 0 {
            return stepped;
        }
        // The smallest divisor at or above the target, else the largest below it, on the same
        // side of the current value (alignment never turns a rescale into a hold).
        let (from, to) = if stepped > cur {
            (cur + 1, hi)
        } else {
            (lo, cur - 1)
        };
        let up = (stepped..=to).find(|d| n % d == 0);
        let down = (from..stepped).rev().find(|d| n % d == 0);
        match up.or(down) {
            Some(d) => {
                push(clamped, "alignment");
                d
            }
            None => stepped,
        }
    }

    /// Guards `proposed` (per-operator targets; key `""` for a job without operators) against
    /// `current` at `now_ms`, updating `st`. The caller reports applied rescales with
    /// [`Guardrails::on_rescale`].
    pub fn apply(
        &self,
        bounds: Bounds,
        st: &mut GuardState,
        now_ms: u64,
        current: &BTreeMap<String, u32>,
        proposed: &BTreeMap<String, u32>,
    ) -> Verdict {
        let mut clamped = Vec::new();
        let mut targets: BTreeMap<String, u32> = current
            .iter()
            .map(|(k, cur)| {
                let want = proposed.get(k).copied().unwrap_or(*cur);
                (
                    k.clone(),
                    self.guard_value(bounds, *cur, want, &mut clamped),
                )
            })
            .collect();
        // Delayed, merged scale-down, per operator: an operator going down waits even when
        // another goes up in the same proposal (the scale-up is never delayed).
        let down = targets.iter().any(|(k, t)| *t < current[k]);
        if down && self.scale_down_delay_secs > 0 {
            let since = *st.scale_down_since_ms.get_or_insert(now_ms);
            for (k, t) in &targets {
                let m = st.scale_down_merged.entry(k.clone()).or_insert(*t);
                *m = (*m).max(*t);
            }
            let waiting = now_ms.saturating_sub(since) < self.scale_down_delay_secs * 1000;
            for (k, t) in targets.iter_mut() {
                let cur = current[k];
                if *t >= cur {
                    continue;
                }
                if waiting {
                    push(&mut clamped, "scale-down-delay");
                    *t = cur;
                } else {
                    // The highest target proposed meanwhile; never above where it is.
                    let merged = st.scale_down_merged.get(k).copied().unwrap_or(*t).min(cur);
                    if merged != *t {
                        push(&mut clamped, "scale-down-merged");
                        *t = merged;
                    }
                }
            }
        } else if !down {
            st.scale_down_since_ms = None;
            st.scale_down_merged.clear();
        }
        let changes = targets.iter().any(|(k, t)| *t != current[k]);
        if changes {
            let gate = if self.freeze.iter().any(|w| w.contains(now_ms)) {
                Some("freeze-window")
            } else if st
                .last_rescale_ms
                .is_some_and(|l| now_ms.saturating_sub(l) < self.cooldown_secs * 1000)
            {
                Some("cooldown")
            } else if self.max_rescales_per_day.is_some_and(|b| {
                st.recent_rescales_ms
                    .iter()
                    .filter(|t| now_ms.saturating_sub(**t) < DAY_MS)
                    .count()
                    >= b as usize
            }) {
                Some("rescale-budget")
            } else {
                None
            };
            if let Some(g) = gate {
                push(&mut clamped, g);
                targets = current.clone();
            }
        }
        Verdict {
            targets,
            clamped_by: clamped,
        }
    }

    /// Records a rescale applied (or finished) at `now_ms`.
    pub fn on_rescale(&self, st: &mut GuardState, now_ms: u64, started: bool) {
        st.last_rescale_ms = Some(now_ms);
        if started {
            st.recent_rescales_ms.push(now_ms);
            st.recent_rescales_ms
                .retain(|t| now_ms.saturating_sub(*t) < DAY_MS);
            st.scale_down_since_ms = None;
            st.scale_down_merged.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        min_parallelism: 1,
        max_parallelism: 16,
    };

    fn job(p: u32) -> BTreeMap<String, u32> {
        BTreeMap::from([(String::new(), p)])
    }

    fn run(
        g: &Guardrails,
        st: &mut GuardState,
        now_s: u64,
        cur: u32,
        want: u32,
    ) -> (u32, Vec<String>) {
        let v = g.apply(B, st, now_s * 1000, &job(cur), &job(want));
        (v.job(), v.clamped_by)
    }

    #[test]
    fn no_guardrails_pass_the_proposal_within_bounds() {
        let g = Guardrails::default();
        let mut st = GuardState::default();
        assert_eq!(run(&g, &mut st, 0, 4, 9), (9, vec![]));
        assert_eq!(run(&g, &mut st, 0, 4, 40), (16, vec!["bounds".to_string()]));
        assert_eq!(run(&g, &mut st, 0, 4, 0), (1, vec!["bounds".to_string()]));
    }

    #[test]
    fn steps_are_limited_each_way() {
        let g = Guardrails {
            max_step_up: Some(2),
            max_step_down: Some(1),
            ..Default::default()
        };
        let mut st = GuardState::default();
        assert_eq!(run(&g, &mut st, 0, 4, 9).0, 6);
        assert_eq!(
            run(&g, &mut st, 0, 4, 1),
            (3, vec!["max-step-down".to_string()])
        );
        assert_eq!(run(&g, &mut st, 0, 4, 5), (5, vec![]));
    }

    #[test]
    fn targets_align_to_divisors_within_the_step() {
        let g = Guardrails {
            align_to_divisors_of: Some(12),
            ..Default::default()
        };
        let mut st = GuardState::default();
        assert_eq!(
            run(&g, &mut st, 0, 2, 5),
            (6, vec!["alignment".to_string()])
        );
        assert_eq!(run(&g, &mut st, 0, 6, 4).0, 4);
        // 7..=12 has 12; bounds of 10 leave only a divisor below.
        let small = Bounds {
            min_parallelism: 1,
            max_parallelism: 10,
        };
        let v = g.apply(small, &mut st, 0, &job(2), &job(7));
        assert_eq!(v.job(), 6);
        // With a step limit of +1 from 4, 5 is not a divisor and 6 is out of reach: the
        // unaligned 5 is kept rather than not moving at all.
        let stepped = Guardrails {
            max_step_up: Some(1),
            ..g.clone()
        };
        assert_eq!(run(&stepped, &mut st, 0, 4, 8).0, 5);
    }

    #[test]
    fn scale_down_waits_and_applies_the_highest_proposal() {
        let g = Guardrails {
            scale_down_delay_secs: 300,
            ..Default::default()
        };
        let mut st = GuardState::default();
        assert_eq!(
            run(&g, &mut st, 0, 8, 3),
            (8, vec!["scale-down-delay".to_string()])
        );
        assert_eq!(run(&g, &mut st, 100, 8, 5).0, 8);
        assert_eq!(run(&g, &mut st, 200, 8, 2).0, 8);
        let (p, why) = run(&g, &mut st, 300, 8, 2);
        assert_eq!((p, why), (5, vec!["scale-down-merged".to_string()]));
        // A hold or a scale-up in between restarts the wait.
        let mut st = GuardState::default();
        run(&g, &mut st, 0, 8, 3);
        run(&g, &mut st, 100, 8, 8);
        assert_eq!(run(&g, &mut st, 300, 8, 3).0, 8);
        // Scale-ups are never delayed.
        assert_eq!(run(&g, &mut st, 310, 8, 12).0, 12);
    }

    #[test]
    fn an_operator_scaling_down_waits_even_when_another_scales_up() {
        let g = Guardrails {
            scale_down_delay_secs: 300,
            ..Default::default()
        };
        let mut st = GuardState::default();
        let cur = BTreeMap::from([("a".to_string(), 4), ("b".to_string(), 8)]);
        let want = BTreeMap::from([("a".to_string(), 6), ("b".to_string(), 4)]);
        let v = g.apply(B, &mut st, 0, &cur, &want);
        assert_eq!(v.targets.values().copied().collect::<Vec<_>>(), vec![6, 8]);
        assert_eq!(v.clamped_by, vec!["scale-down-delay"]);
        // After the wait `b` goes down (to the highest it was proposed meanwhile).
        let cur = BTreeMap::from([("a".to_string(), 6), ("b".to_string(), 8)]);
        let want = BTreeMap::from([("a".to_string(), 6), ("b".to_string(), 3)]);
        let v = g.apply(B, &mut st, 300_000, &cur, &want);
        assert_eq!(v.targets.values().copied().collect::<Vec<_>>(), vec![6, 4]);
        assert_eq!(v.clamped_by, vec!["scale-down-merged"]);
    }

    #[test]
    fn cooldown_budget_and_freeze_gate_any_change() {
        let g = Guardrails {
            cooldown_secs: 60,
            max_rescales_per_day: Some(2),
            freeze: vec![FreezeWindow {
                start: "23:00".into(),
                end: "01:00".into(),
            }],
            ..Default::default()
        };
        g.validate().unwrap();
        let mut st = GuardState::default();
        let t0 = 3600; // 01:00 UTC, just outside the window
        assert_eq!(run(&g, &mut st, t0, 4, 6).0, 6);
        g.on_rescale(&mut st, t0 * 1000, true);
        assert_eq!(
            run(&g, &mut st, t0 + 30, 6, 8),
            (6, vec!["cooldown".to_string()])
        );
        assert_eq!(run(&g, &mut st, t0 + 61, 6, 8).0, 8);
        g.on_rescale(&mut st, (t0 + 61) * 1000, true);
        assert_eq!(
            run(&g, &mut st, t0 + 200, 8, 10),
            (8, vec!["rescale-budget".to_string()])
        );
        // A day later the budget is back; 23:30 is frozen, 00:59 too, 01:00 is not.
        let day = 24 * 3600;
        assert_eq!(run(&g, &mut st, day + 3600, 8, 10).0, 10);
        assert_eq!(
            run(&g, &mut st, 23 * 3600 + 1800, 8, 10),
            (8, vec!["freeze-window".to_string()])
        );
        assert_eq!(
            run(&g, &mut st, day + 3540, 8, 10).1,
            vec!["freeze-window".to_string()]
        );
        // Holding is never gated or recorded as a clamp.
        assert_eq!(run(&g, &mut st, day + 3540, 8, 8), (8, vec![]));
    }

    #[test]
    fn combined_guards_report_each_clamp_once() {
        let g = Guardrails {
            max_step_up: Some(3),
            align_to_divisors_of: Some(12),
            ..Default::default()
        };
        let mut st = GuardState::default();
        let cur = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 2)]);
        let want = BTreeMap::from([("a".to_string(), 40), ("b".to_string(), 9)]);
        let v = g.apply(B, &mut st, 0, &cur, &want);
        // Both capped at 5 by the step, then aligned down to 4 (6 is out of reach).
        assert_eq!(v.targets.values().copied().collect::<Vec<_>>(), vec![4, 4]);
        assert_eq!(v.clamped_by, vec!["bounds", "max-step-up", "alignment"]);
    }

    #[test]
    fn a_partition_cap_clamps_with_its_own_name() {
        let g = Guardrails {
            partition_cap: Some(4),
            ..Default::default()
        };
        let mut st = GuardState::default();
        assert_eq!(
            run(&g, &mut st, 0, 2, 9),
            (4, vec!["partitions".to_string()])
        );
        assert_eq!(run(&g, &mut st, 0, 2, 3), (3, vec![]));
        // Alignment never lands above the cap: 3 is not a divisor of 8, 4 is, 8 is out.
        let aligned = Guardrails {
            partition_cap: Some(4),
            align_to_divisors_of: Some(8),
            ..Default::default()
        };
        assert_eq!(
            run(&aligned, &mut st, 0, 2, 3),
            (4, vec!["alignment".to_string()])
        );
        let twelve = Guardrails {
            partition_cap: Some(5),
            align_to_divisors_of: Some(12),
            ..Default::default()
        };
        // 5 is within the cap but no divisor of 12; 6 is one but above the cap: 4.
        assert_eq!(
            run(&twelve, &mut st, 0, 2, 5),
            (4, vec!["alignment".to_string()])
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        let bad = Guardrails {
            freeze: vec![FreezeWindow {
                start: "25:00".into(),
                end: "01:00".into(),
            }],
            ..Default::default()
        };
        let e = format!("{:#}", bad.validate().unwrap_err());
        assert!(e.contains("freeze[0].start"), "{e}");
        let zero = Guardrails {
            max_step_up: Some(0),
            ..Default::default()
        };
        assert!(format!("{:#}", zero.validate().unwrap_err()).contains("max_step_up"));
    }
}
