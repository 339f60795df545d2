//! Typed access to a policy's `key = "value"` parameters.
//!
//! Parse once at the start of `decide` with [`Params::new`], giving the keys the policy knows;
//! an unknown key or a value that does not parse is an [`PolicyError::InvalidParams`] naming the key.

use crate::PolicyError;

/// The parameters of one decision, checked against the keys the policy accepts.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    /// Wraps `pairs`, rejecting any key not in `known` and any key given twice.
    pub fn new(pairs: &'a [(String, String)], known: &[&str]) -> Result<Self, PolicyError> {
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !known.contains(&k.as_str()) {
                return Err(PolicyError::InvalidParams(format!(
                    "unknown parameter `{k}` (known: {})",
                    known.join(", ")
                )));
            }
            if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(PolicyError::InvalidParams(format!(
                    "parameter `{k}` given twice"
                )));
            }
        }
        Ok(Params { pairs })
    }

    /// The raw value of `key`, if given.
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
    }

    /// A finite float in `[min, max]`, or `default` when absent.
    pub fn f64_in(&self, key: &str, default: f64, min: f64, max: f64) -> Result<f64, PolicyError> {
        let Some(raw) = self.raw(key) else {
            return Ok(default);
        };
        let v: f64 = raw.parse().map_err(|_| invalid(key, raw, "a number"))?;
        if !v.is_finite() || v < min || v > max {
            return Err(invalid(key, raw, &format!("a number in [{min}, {max}]")));
        }
        Ok(v)
    }

    /// An integer in `[min, max]`, or `default` when absent.
    pub fn u64_in(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, PolicyError> {
        let Some(raw) = self.raw(key) else {
            return Ok(default);
        };
        let v: u64 = raw
            .replace('_', "")
            .parse()
            .map_err(|_| invalid(key, raw, "a non-negative integer"))?;
        if v < min || v > max {
            return Err(invalid(key, raw, &format!("an integer in [{min}, {max}]")));
        }
        Ok(v)
    }

    /// An optional integer in `[min, max]`; absent or empty (the default such a parameter
    /// advertises) is `None`.
    pub fn opt_u64_in(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, PolicyError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(_) => self.u64_in(key, 0, min, max).map(Some),
        }
    }

    /// A boolean (`true`/`false`), or `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, PolicyError> {
        match self.raw(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(raw) => Err(invalid(key, raw, "`true` or `false`")),
        }
    }

    /// One of `choices`, or `default` when absent.
    pub fn choice(
        &self,
        key: &str,
        default: &'a str,
        choices: &[&'a str],
    ) -> Result<&'a str, PolicyError> {
        match self.raw(key) {
            None => Ok(default),
            Some(raw) => choices
                .iter()
                .find(|c| **c == raw)
                .copied()
                .ok_or_else(|| invalid(key, raw, &format!("one of {}", choices.join(", ")))),
        }
    }
}

fn invalid(key: &str, raw: &str, expected: &str) -> PolicyError {
    PolicyError::InvalidParams(format!("`{key}` = `{raw}`: expected {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_typed_values_and_defaults() {
        let p = pairs(&[("a", "0.5"), ("n", "1_000"), ("b", "true"), ("c", "max")]);
        let params = Params::new(&p, &["a", "n", "b", "c", "d"]).unwrap();
        assert_eq!(params.f64_in("a", 0.0, 0.0, 1.0).unwrap(), 0.5);
        assert_eq!(params.u64_in("n", 0, 0, 10_000).unwrap(), 1000);
        assert!(params.bool("b", false).unwrap());
        assert_eq!(params.choice("c", "min", &["min", "max"]).unwrap(), "max");
        assert_eq!(params.f64_in("d", 7.0, 0.0, 10.0).unwrap(), 7.0);
    }

    /// An optional integer given as its advertised empty default is absent (`static`'s
    /// `parallelism = ""` was refused as not an integer).
    #[test]
    fn an_empty_optional_integer_is_absent() {
        let p = pairs(&[("a", ""), ("b", " 3 ")]);
        let params = Params::new(&p, &["a", "b", "c"]).unwrap();
        assert_eq!(params.opt_u64_in("a", 1, 10).unwrap(), None);
        assert_eq!(params.opt_u64_in("b", 1, 10).unwrap(), Some(3));
        assert_eq!(params.opt_u64_in("c", 1, 10).unwrap(), None);
        assert!(params.opt_u64_in("b", 4, 10).is_err());
    }

    #[test]
    fn rejects_unknown_duplicate_and_out_of_range() {
        let p = pairs(&[("x", "1")]);
        assert!(
            matches!(Params::new(&p, &["a"]), Err(PolicyError::InvalidParams(m)) if m.contains("`x`"))
        );
        let p = pairs(&[("a", "1"), ("a", "2")]);
        assert!(Params::new(&p, &["a"]).is_err());
        let p = pairs(&[("a", "NaN")]);
        let params = Params::new(&p, &["a"]).unwrap();
        assert!(params.f64_in("a", 0.0, 0.0, 1.0).is_err());
        let p = pairs(&[("a", "2")]);
        let params = Params::new(&p, &["a"]).unwrap();
        assert!(params.f64_in("a", 0.0, 0.0, 1.0).is_err());
        assert!(params.bool("a", false).is_err());
    }
}
