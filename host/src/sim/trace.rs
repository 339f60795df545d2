//! Workload traces: one arrival rate per second.
//!
//! Two file formats are read: the `second|count` files of the Daedalus artifact (a header line,
//! then `second|records`), and a plain CSV with a header whose first two columns are seconds and
//! rate (`seconds,rate`). Seconds must start at 0 and increase by one; rates are non-negative
//! records per second (fractions are rounded). Synthetic generators cover tests and demos.

use std::path::Path;

/// Largest rate accepted, records/s: sums over a long trace must stay far from `u64::MAX`.
pub const MAX_RATE: f64 = 1e12;

/// A workload: records arriving in each second.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Display name (file stem or generator spec).
    pub name: String,
    /// Records arriving in second `i`.
    pub rates: Vec<u64>,
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be read.
    #[error("cannot read trace {path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Neither an existing file nor a synthetic spec.
    #[error("trace file {0} does not exist (and it is not a synthetic spec like `sine:max=40000`)")]
    Missing(String),
    /// A line is malformed.
    #[error("{path}:{line}: {detail}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A synthetic spec is malformed.
    #[error("bad synthetic trace `{spec}`: {detail}")]
    BadSpec {
        /// The spec.
        spec: String,
        /// What is wrong.
        detail: String,
    },
}

impl Trace {
    /// Reads a trace file in either format.
    pub fn from_file(path: &Path) -> Result<Trace, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "trace".into());
        Trace::parse(&name, &path.display().to_string(), &text)
    }

    /// Parses trace text; `origin` names the source in errors.
    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Trace, TraceError> {
        let bad = |line: usize, detail: String| TraceError::Malformed {
            path: origin.to_string(),
            line,
            detail,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            return Err(bad(1, "empty file".into()));
        };
        let header = header.trim_start_matches('\u{feff}');
        let sep = if header.contains('|') { '|' } else { ',' };
        if header.split(sep).count() < 2 {
            return Err(bad(
                1,
                format!("expected a header like `second|count` or `seconds,rate`, got `{header}`"),
            ));
        }
        let mut rates = Vec::new();
        for (i, line) in lines {
            let n = i + 1;
            let mut cols = line.split(sep).map(str::trim);
            let (Some(sec), Some(rate)) = (cols.next(), cols.next()) else {
                return Err(bad(
                    n,
                    format!("expected two `{sep}`-separated columns, got `{line}`"),
                ));
            };
            let sec: f64 = sec
                .parse()
                .map_err(|_| bad(n, format!("second `{sec}` is not a number")))?;
            let rate: f64 = rate
                .parse()
                .map_err(|_| bad(n, format!("rate `{rate}` is not a number")))?;
            if sec != rates.len() as f64 {
                return Err(bad(
                    n,
                    format!("expected second {}, got {sec}", rates.len()),
                ));
            }
            if !rate.is_finite() || rate < 0.0 {
                return Err(bad(n, format!("rate {rate} must be a finite number >= 0")));
            }
            if rate > MAX_RATE {
                return Err(bad(
                    n,
                    format!("rate {rate} is above the supported {MAX_RATE:e} records/s"),
                ));
            }
            rates.push(rate.round() as u64);
        }
        if rates.is_empty() {
            return Err(bad(1, "no data rows".into()));
        }
        Ok(Trace {
            name: name.to_string(),
            rates,
        })
    }

    /// Length, seconds.
    pub fn duration_s(&self) -> u64 {
        self.rates.len() as u64
    }

    /// Multiplies every rate by `factor` (e.g. to fit a trace to a profile's capacity).
    pub fn scaled(mut self, factor: f64) -> Trace {
        for r in &mut self.rates {
            *r = (*r as f64 * factor).round().clamp(0.0, MAX_RATE) as u64;
        }
        if factor != 1.0 {
            self.name = format!("{}x{factor}", self.name);
        }
        self
    }

    /// The first `seconds` seconds.
    pub fn truncated(mut self, seconds: u64) -> Trace {
        self.rates.truncate(seconds as usize);
        self
    }

    /// A trace file if `spec` names an existing file, else a synthetic spec (which contains a
    /// `:`); anything else is a missing file.
    pub fn load(spec: &str) -> Result<Trace, TraceError> {
        let path = Path::new(spec);
        if path.exists() {
            Trace::from_file(path)
        } else if spec.contains(':') {
            Trace::synthetic(spec)
        } else {
            Err(TraceError::Missing(spec.to_string()))
        }
    }

    /// A synthetic trace from a spec `KIND:key=value,...` (rates in records/s, times in s;
    /// each key at most once; defaults in brackets):
    ///
    /// - `constant:rate=R[10000]`
    /// - `step:low=L[5000],high=H[20000],at=T[duration/2]`
    /// - `sine:min=A[5000],max=B[40000],period=P[3600]` (`min` ≤ `max`, `period` ≥ 1)
    /// - `spike:base=B[5000],peak=P[40000],at=T[duration/2],width=W[60]` (`width` ≥ 1)
    /// - `random-walk:start=R[10000],step=D[200],min=A[1000],max=B[50000],seed=N[1]`
    ///   (`min` ≤ `max`; `step` is the standard deviation of the change per second)
    ///
    /// and every kind `duration=S[3600]`.
    pub fn synthetic(spec: &str) -> Result<Trace, TraceError> {
        let bad = |detail: String| TraceError::BadSpec {
            spec: spec.to_string(),
            detail,
        };
        let (kind, args) = spec.split_once(':').unwrap_or((spec, ""));
        let mut kv = std::collections::BTreeMap::new();
        for pair in args.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("`{pair}` is not key=value")))?;
            let v: f64 = v
                .parse()
                .map_err(|_| bad(format!("`{k}` = `{v}` is not a number")))?;
            if !v.is_finite() || !(0.0..=MAX_RATE).contains(&v) {
                return Err(bad(format!(
                    "`{k}` must be a finite number in [0, {MAX_RATE:e}]"
                )));
            }
            if kv.insert(k.to_string(), v).is_some() {
                return Err(bad(format!("`{k}` is given twice")));
            }
        }
        let get = |k: &str, default: f64| kv.get(k).copied().unwrap_or(default);
        let duration = get("duration", 3600.0) as usize;
        if duration == 0 || duration > 7 * 86_400 {
            return Err(bad("duration must be in [1, 604800] seconds".into()));
        }
        let known: &[&str] = match kind {
            "constant" => &["rate", "duration"],
            "step" => &["low", "high", "at", "duration"],
            "sine" => &["min", "max", "period", "duration"],
            "spike" => &["base", "peak", "at", "width", "duration"],
            "random-walk" => &["start", "step", "min", "max", "seed", "duration"],
            other => {
                return Err(bad(format!(
                    "unknown kind `{other}` (constant, step, sine, spike, random-walk)"
                )));
            }
        };
        if let Some(k) = kv.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(bad(format!(
                "unknown key `{k}` for {kind} ({})",
                known.join(", ")
            )));
        }
        let ordered = |lo: &str, lo_d: f64, hi: &str, hi_d: f64| {
            if get(lo, lo_d) > get(hi, hi_d) {
                Err(bad(format!(
                    "`{lo}` ({}) exceeds `{hi}` ({})",
                    get(lo, lo_d),
                    get(hi, hi_d)
                )))
            } else {
                Ok(())
            }
        };
        let at_least_one = |k: &str| match kv.get(k) {
            Some(&v) if v < 1.0 => Err(bad(format!("`{k}` must be at least 1 second"))),
            _ => Ok(()),
        };
        match kind {
            "sine" => {
                ordered("min", 5_000.0, "max", 40_000.0)?;
                at_least_one("period")?;
            }
            "spike" => at_least_one("width")?,
            "random-walk" => ordered("min", 1_000.0, "max", 50_000.0)?,
            _ => {}
        }
        let rates: Vec<u64> = match kind {
            "constant" => vec![get("rate", 10_000.0) as u64; duration],
            "step" => {
                let at = get("at", duration as f64 / 2.0) as usize;
                (0..duration)
                    .map(|t| {
                        (if t < at {
                            get("low", 5_000.0)
                        } else {
                            get("high", 20_000.0)
                        }) as u64
                    })
                    .collect()
            }
            "sine" => {
                let (lo, hi, period) = (
                    get("min", 5_000.0),
                    get("max", 40_000.0),
                    get("period", 3600.0),
                );
                (0..duration)
                    .map(|t| {
                        let phase = 2.0 * std::f64::consts::PI * t as f64 / period;
                        (lo + (hi - lo) * (1.0 - phase.cos()) / 2.0).round() as u64
                    })
                    .collect()
            }
            "spike" => {
                let (at, width) = (get("at", duration as f64 / 2.0), get("width", 60.0));
                (0..duration)
                    .map(|t| {
                        let inside = (t as f64) >= at && (t as f64) < at + width;
                        (if inside {
                            get("peak", 40_000.0)
                        } else {
                            get("base", 5_000.0)
                        }) as u64
                    })
                    .collect()
            }
            _ => {
                let mut rng = super::rng::Rng::new(get("seed", 1.0) as u64);
                let (lo, hi, step) = (
                    get("min", 1_000.0),
                    get("max", 50_000.0),
                    get("step", 200.0),
                );
                let mut r = get("start", 10_000.0).clamp(lo, hi);
                (0..duration)
                    .map(|_| {
                        r = (r + step * rng.normal()).clamp(lo, hi);
                        r.round() as u64
                    })
                    .collect()
            }
        };
        Ok(Trace {
            name: spec.replace([':', ',', '='], "_"),
            rates,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats() {
        let a = Trace::parse("a", "a", "second|count\n0|10\n1|20\n").unwrap();
        assert_eq!(a.rates, vec![10, 20]);
        let b = Trace::parse("b", "b", "\u{feff}seconds,rate\n0,1.4\n1,2.6\n\n").unwrap();
        assert_eq!(b.rates, vec![1, 3]);
    }

    #[test]
    fn malformed_rows_name_the_line() {
        for (text, want) in [
            ("second|count\n0|10\n2|20\n", ":3: expected second 1"),
            ("second|count\n0|x\n", ":2: rate `x`"),
            ("second|count\n0|-5\n", ">= 0"),
            ("second|count\n0|1e20\n", "above the supported"),
            ("second|count\n0\n", "two `|`-separated"),
            ("", "empty file"),
            ("second|count\n", "no data rows"),
            ("justone\n0\n", "header"),
        ] {
            let e = Trace::parse("t", "t.csv", text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn synthetic_generators() {
        assert_eq!(
            Trace::synthetic("constant:rate=5,duration=3")
                .unwrap()
                .rates,
            vec![5, 5, 5]
        );
        assert_eq!(
            Trace::synthetic("step:low=1,high=9,at=2,duration=4")
                .unwrap()
                .rates,
            vec![1, 1, 9, 9]
        );
        let s = Trace::synthetic("sine:min=0,max=100,period=4,duration=4").unwrap();
        assert_eq!(s.rates, vec![0, 50, 100, 50]);
        let sp = Trace::synthetic("spike:base=1,peak=5,at=1,width=2,duration=4").unwrap();
        assert_eq!(sp.rates, vec![1, 5, 5, 1]);
        let w1 = Trace::synthetic("random-walk:seed=3,duration=100").unwrap();
        assert_eq!(
            w1,
            Trace::synthetic("random-walk:seed=3,duration=100").unwrap()
        );
        assert!(w1.rates.iter().all(|r| (1_000..=50_000).contains(r)));
        assert!(Trace::synthetic("zigzag:duration=3").is_err());
        assert!(Trace::synthetic("constant:rate=-1").is_err());
        assert!(Trace::synthetic("constant:speed=1").is_err());
        assert!(Trace::synthetic("constant:duration=100000000").is_err());
    }

    #[test]
    fn inconsistent_specs_are_refused_with_the_reason() {
        for (spec, want) in [
            (
                "random-walk:min=5,max=2,duration=10",
                "`min` (5) exceeds `max` (2)",
            ),
            (
                "random-walk:min=60000,duration=10",
                "`min` (60000) exceeds `max` (50000)",
            ),
            (
                "sine:min=10,max=5,duration=10",
                "`min` (10) exceeds `max` (5)",
            ),
            ("sine:period=0,duration=10", "`period` must be at least 1"),
            ("spike:width=0.5,duration=10", "`width` must be at least 1"),
            ("constant:rate=1,rate=2", "`rate` is given twice"),
        ] {
            let e = Trace::synthetic(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(e.contains(spec), "{spec}: the error names the spec: {e}");
        }
        // Equal bounds are a constant, not an error.
        let flat = Trace::synthetic("random-walk:min=7,max=7,duration=5").unwrap();
        assert_eq!(flat.rates, vec![7; 5]);
    }
}
