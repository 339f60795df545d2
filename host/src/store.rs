//! Durable knowledge: an embedded SQLite database (WAL) holding each job's metric history,
//! every decision with its explanation and the policy digest (active and shadow), rescale
//! events with their measured duration, policy state blobs, guardrail state, and every policy
//! swap, rollback and promotion.
//!
//! Rescales are written ahead: the loop records the *request* before calling the engine and
//! its outcome after. A host killed in between finds an open request on restart and sends it
//! again; actuators are idempotent (asking for the current target sends nothing), so the job
//! ends at the desired parallelism and the rescale is neither lost nor made twice.
//!
//! One connection behind a mutex: every statement is a short indexed write or read, so
//! callers on the async runtime hold it for microseconds.

use crate::model::{Decision, Observation};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;
use thiserror::Error;

/// Why the store failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed. The message carries SQLite's (so it is not also the `source`, which
    /// would print it twice in an error chain).
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    /// A stored row does not parse.
    #[error("database row: {0}")]
    Corrupt(serde_json::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e)
    }
}

/// One recorded decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Job name.
    pub job: String,
    /// Loop clock, ms.
    pub at_ms: u64,
    /// `active`, or the shadow candidate's name.
    pub role: String,
    /// Policy name.
    pub policy: String,
    /// sha256 of the component.
    pub digest: String,
    /// Parallelism when deciding.
    pub current: u32,
    /// Job-level parallelism proposed.
    pub proposed: u32,
    /// After the guardrails (for shadows: what the guardrails would have allowed).
    pub target: u32,
    /// Guardrails that changed the proposal.
    pub clamped_by: Vec<String>,
    /// The policy's reason.
    pub reason: String,
    /// The policy's named numbers, as JSON.
    pub explanation: serde_json::Value,
    /// Why the policy failed, when it did.
    pub error: Option<String>,
}

/// A job-level sample of the metric history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Loop clock, ms.
    pub at_ms: u64,
    /// Parallelism.
    pub parallelism: u32,
    /// Input rate, records/s.
    pub input_rate: Option<f64>,
    /// Throughput, records/s.
    pub throughput: Option<f64>,
    /// Lag, records.
    pub lag: Option<f64>,
}

/// An open (unfinished) rescale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRescale {
    /// Row id.
    pub id: i64,
    /// When it was requested, ms.
    pub requested_ms: u64,
    /// The target, as JSON (`{"job": n, "operators": {...}}`).
    pub target: String,
    /// Whether the engine confirmed the request (`false`: the host died before recording it).
    pub applied: bool,
}

/// A finished or abandoned rescale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RescaleRecord {
    /// Job.
    pub job: String,
    /// Requested, ms.
    pub requested_ms: u64,
    /// From, job-level.
    pub from: u32,
    /// To, job-level.
    pub to: u32,
    /// `requested`, `applied`, `done`, `timeout`, `already`, `rejected`, `busy`, `error`.
    pub outcome: String,
    /// Measured duration from request to the job running at the target, s.
    pub duration_s: Option<f64>,
}

/// A policy swap, rollback or promotion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyEvent {
    /// Job.
    pub job: String,
    /// When, ms.
    pub at_ms: u64,
    /// `swap`, `rollback`, `promote`, `swap-refused`.
    pub kind: String,
    /// Digest before.
    pub from_digest: String,
    /// Digest after.
    pub to_digest: String,
    /// Details.
    pub detail: String,
}

/// The active policy set through the API (a swap, a promotion, or a rollback to one of
/// those), kept so a restarted host runs it again while the configuration it overrode is
/// unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyOverride {
    /// Job.
    pub job: String,
    /// When it became active, ms (the job's clock).
    pub at_ms: u64,
    /// What made it active: `api`, `promote:NAME`, `rollback`, `file-watch`.
    pub source: String,
    /// sha256 of the component.
    pub digest: String,
    /// The params it runs with.
    pub params: Vec<(String, String)>,
    /// The component's bytes (its file may be gone by the restart).
    pub wasm: Vec<u8>,
    /// The configured policy's digest when it was set.
    pub basis_digest: String,
    /// The configured params when it was set.
    pub basis_params: Vec<(String, String)>,
}

/// A policy's saved digest and state blob.
pub type SavedState = (String, Option<Vec<u8>>);

/// The database.
pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS observations (
    job TEXT NOT NULL, at_ms INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (job, at_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS samples (
    job TEXT NOT NULL, at_ms INTEGER NOT NULL, parallelism INTEGER NOT NULL,
    input_rate REAL, throughput REAL, lag REAL,
    PRIMARY KEY (job, at_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, at_ms INTEGER NOT NULL, role TEXT NOT NULL,
    policy TEXT NOT NULL, digest TEXT NOT NULL, current INTEGER NOT NULL,
    proposed INTEGER NOT NULL, target INTEGER NOT NULL, clamped TEXT NOT NULL,
    reason TEXT NOT NULL, explanation TEXT NOT NULL, error TEXT);
CREATE INDEX IF NOT EXISTS decisions_by_job ON decisions (job, at_ms);
CREATE TABLE IF NOT EXISTS rescales (
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, requested_ms INTEGER NOT NULL,
    from_p INTEGER NOT NULL, to_p INTEGER NOT NULL, target TEXT NOT NULL,
    outcome TEXT NOT NULL, finished_ms INTEGER);
CREATE INDEX IF NOT EXISTS rescales_by_job ON rescales (job, requested_ms);
CREATE TABLE IF NOT EXISTS policy_state (
    job TEXT NOT NULL, slot TEXT NOT NULL, digest TEXT NOT NULL, state BLOB,
    PRIMARY KEY (job, slot)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS loop_state (
    job TEXT PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_override (
    job TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, source TEXT NOT NULL, digest TEXT NOT NULL,
    params TEXT NOT NULL, basis_digest TEXT NOT NULL, basis_params TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS policy_component (digest TEXT PRIMARY KEY, wasm BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS policy_events (
    id INTEGER PRIMARY KEY, job TEXT NOT NULL, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
    from_digest TEXT NOT NULL, to_digest TEXT NOT NULL, detail TEXT NOT NULL);
";

/// Deletes the saved components no override refers to.
const ORPHAN_COMPONENTS: &str =
    "DELETE FROM policy_component WHERE digest NOT IN (SELECT digest FROM policy_override)";

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        Self::init(Connection::open(path)?)
    }

    /// A private in-memory database (tests, or running without one).
    pub fn in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an observation: in full (per worker and operator; kept for the policies'
    /// history window) and as a job-level sample (kept for the retention period).
    pub fn put_observation(&self, job: &str, o: &Observation) -> Result<(), StoreError> {
        let c = self.conn();
        c.execute(
            "INSERT OR REPLACE INTO observations (job, at_ms, data) VALUES (?1, ?2, ?3)",
            params![job, o.at_ms as i64, serde_json::to_string(o)?],
        )?;
        c.execute(
            "INSERT OR REPLACE INTO samples (job, at_ms, parallelism, input_rate, throughput, lag) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                job,
                o.at_ms as i64,
                o.parallelism,
                o.input_records_per_sec,
                o.throughput_records_per_sec,
                o.lag_records
            ],
        )?;
        Ok(())
    }

    /// The job's job-level samples from `since_ms` on, oldest first.
    pub fn samples(&self, job: &str, since_ms: u64) -> Result<Vec<Sample>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(
            "SELECT at_ms, parallelism, input_rate, throughput, lag FROM samples \
             WHERE job = ?1 AND at_ms >= ?2 ORDER BY at_ms",
        )?;
        let rows = st.query_map(params![job, since_ms as i64], |r| {
            Ok(Sample {
                at_ms: r.get::<_, i64>(0)? as u64,
                parallelism: r.get(1)?,
                input_rate: r.get(2)?,
                throughput: r.get(3)?,
                lag: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The job's observations of the last `window_ms` before its latest one, oldest first.
    pub fn recent_observations(
        &self,
        job: &str,
        window_ms: u64,
    ) -> Result<Vec<Observation>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(
            "SELECT data FROM observations WHERE job = ?1 AND at_ms >= \
             (SELECT COALESCE(MAX(at_ms), 0) FROM observations WHERE job = ?1) - ?2 \
             ORDER BY at_ms",
        )?;
        let rows = st.query_map(params![job, window_ms as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r?)?);
        }
        Ok(out)
    }

    /// Records a decision.
    pub fn put_decision(&self, d: &DecisionRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO decisions (job, at_ms, role, policy, digest, current, proposed, target, \
             clamped, reason, explanation, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                d.job,
                d.at_ms as i64,
                d.role,
                d.policy,
                d.digest,
                d.current,
                d.proposed,
                d.target,
                serde_json::to_string(&d.clamped_by)?,
                d.reason,
                d.explanation.to_string(),
                d.error,
            ],
        )?;
        Ok(())
    }

    /// How many of the job's decisions of `role` since `since_ms` failed (counted in SQLite, not
    /// read back).
    pub fn policy_errors(&self, job: &str, role: &str, since_ms: u64) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM decisions WHERE job = ?1 AND role = ?2 AND at_ms >= ?3 \
             AND error IS NOT NULL",
            params![job, role, i64::try_from(since_ms).unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The job's decisions, newest first: `limit` of them, optionally of one role only.
    pub fn decisions(
        &self,
        job: &str,
        role: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DecisionRecord>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(
            "SELECT job, at_ms, role, policy, digest, current, proposed, target, clamped, reason, \
             explanation, error FROM decisions WHERE job = ?1 AND (?2 IS NULL OR role = ?2) \
             ORDER BY at_ms DESC, id DESC LIMIT ?3",
        )?;
        let rows = st.query_map(params![job, role, limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, u32>(5)?,
                r.get::<_, u32>(6)?,
                r.get::<_, u32>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, String>(10)?,
                r.get::<_, Option<String>>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (
                job,
                at,
                role,
                policy,
                digest,
                current,
                proposed,
                target,
                clamped,
                reason,
                ex,
                error,
            ) = r?;
            out.push(DecisionRecord {
                job,
                at_ms: at as u64,
                role,
                policy,
                digest,
                current,
                proposed,
                target,
                clamped_by: serde_json::from_str(&clamped)?,
                reason,
                explanation: serde_json::from_str(&ex)?,
                error,
            });
        }
        Ok(out)
    }

    /// Writes a rescale request ahead of the engine call; returns its id.
    pub fn begin_rescale(
        &self,
        job: &str,
        at_ms: u64,
        from: u32,
        to: u32,
        target_json: &str,
    ) -> Result<i64, StoreError> {
        let c = self.conn();
        c.execute(
            "INSERT INTO rescales (job, requested_ms, from_p, to_p, target, outcome) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'requested')",
            params![job, at_ms as i64, from, to, target_json],
        )?;
        Ok(c.last_insert_rowid())
    }

    /// Records what the engine answered (`applied`, `already`, `rejected`, `busy`, `error`), or
    /// `abandoned` for a request not re-sent after a restart.
    pub fn rescale_outcome(&self, id: i64, outcome: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE rescales SET outcome = ?2 WHERE id = ?1",
            params![id, outcome],
        )?;
        Ok(())
    }

    /// Closes a rescale (`done` or `timeout`) at `at_ms`.
    pub fn finish_rescale(&self, id: i64, at_ms: u64, outcome: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE rescales SET outcome = ?2, finished_ms = ?3 WHERE id = ?1",
            params![id, outcome, at_ms as i64],
        )?;
        Ok(())
    }

    /// The job's unfinished rescale (requested or applied, not done), if any.
    pub fn open_rescale(&self, job: &str) -> Result<Option<OpenRescale>, StoreError> {
        let c = self.conn();
        Ok(c.query_row(
            "SELECT id, requested_ms, target, outcome FROM rescales WHERE job = ?1 \
             AND outcome IN ('requested', 'applied') ORDER BY id DESC LIMIT 1",
            params![job],
            |r| {
                Ok(OpenRescale {
                    id: r.get(0)?,
                    requested_ms: r.get::<_, i64>(1)? as u64,
                    target: r.get(2)?,
                    applied: r.get::<_, String>(3)? == "applied",
                })
            },
        )
        .optional()?)
    }

    /// Rescales the engine accepted (applied, finished or timed out).
    pub fn rescale_count(&self, job: &str) -> Result<u32, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM rescales WHERE job = ?1 AND outcome IN ('applied', 'done', 'timeout')",
            params![job],
            |r| r.get(0),
        )?)
    }

    /// The job's rescales, oldest first.
    pub fn rescales(&self, job: &str) -> Result<Vec<RescaleRecord>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(
            "SELECT job, requested_ms, from_p, to_p, outcome, finished_ms FROM rescales \
             WHERE job = ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![job], |r| {
            let req: i64 = r.get(1)?;
            let fin: Option<i64> = r.get(5)?;
            Ok(RescaleRecord {
                job: r.get(0)?,
                requested_ms: req as u64,
                from: r.get(2)?,
                to: r.get(3)?,
                outcome: r.get(4)?,
                duration_s: fin.map(|f| (f - req) as f64 / 1000.0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Saves a policy's state blob (`slot`: `active` or `shadow:NAME`).
    pub fn put_policy_state(
        &self,
        job: &str,
        slot: &str,
        digest: &str,
        state: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO policy_state (job, slot, digest, state) VALUES (?1, ?2, ?3, ?4)",
            params![job, slot, digest, state],
        )?;
        Ok(())
    }

    /// A policy's saved digest and state blob.
    pub fn policy_state(&self, job: &str, slot: &str) -> Result<Option<SavedState>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT digest, state FROM policy_state WHERE job = ?1 AND slot = ?2",
                params![job, slot],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Saves the loop's own state (guardrails, rescale status, previous outcome) as JSON.
    pub fn put_loop_state<T: Serialize>(&self, job: &str, data: &T) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO loop_state (job, data) VALUES (?1, ?2)",
            params![job, serde_json::to_string(data)?],
        )?;
        Ok(())
    }

    /// The loop's saved state.
    pub fn loop_state<T: for<'de> Deserialize<'de>>(
        &self,
        job: &str,
    ) -> Result<Option<T>, StoreError> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT data FROM loop_state WHERE job = ?1",
                params![job],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    }

    /// Saves the job's policy override, replacing any earlier one. The component's bytes are
    /// kept once per digest, however many jobs it overrides.
    pub fn put_policy_override(&self, o: &PolicyOverride) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO policy_component (digest, wasm) VALUES (?1, ?2)",
            params![o.digest, o.wasm],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO policy_override \
             (job, at_ms, source, digest, params, basis_digest, basis_params) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                o.job,
                o.at_ms as i64,
                o.source,
                o.digest,
                serde_json::to_string(&o.params)?,
                o.basis_digest,
                serde_json::to_string(&o.basis_params)?
            ],
        )?;
        tx.execute(ORPHAN_COMPONENTS, [])?;
        tx.commit()?;
        Ok(())
    }

    /// The job's policy override, if one is saved.
    pub fn policy_override(&self, job: &str) -> Result<Option<PolicyOverride>, StoreError> {
        type Row = (i64, String, String, String, Vec<u8>, String, String);
        let row: Option<Row> = self
            .conn()
            .query_row(
                "SELECT o.at_ms, o.source, o.digest, o.params, c.wasm, o.basis_digest, \
                 o.basis_params FROM policy_override o \
                 JOIN policy_component c ON c.digest = o.digest WHERE o.job = ?1",
                params![job],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((at_ms, source, digest, params, wasm, basis_digest, basis_params)) = row else {
            return Ok(None);
        };
        Ok(Some(PolicyOverride {
            job: job.into(),
            at_ms: at_ms as u64,
            source,
            digest,
            params: serde_json::from_str(&params)?,
            wasm,
            basis_digest,
            basis_params: serde_json::from_str(&basis_params)?,
        }))
    }

    /// Forgets the job's policy override (the configured policy is active again), and the
    /// component's bytes once no job's override uses them.
    pub fn clear_policy_override(&self, job: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM policy_override WHERE job = ?1", params![job])?;
        tx.execute(ORPHAN_COMPONENTS, [])?;
        tx.commit()?;
        Ok(())
    }

    /// Records a swap, rollback or promotion.
    pub fn put_policy_event(&self, e: &PolicyEvent) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO policy_events (job, at_ms, kind, from_digest, to_digest, detail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                e.job,
                e.at_ms as i64,
                e.kind,
                e.from_digest,
                e.to_digest,
                e.detail
            ],
        )?;
        Ok(())
    }

    /// The job's policy events, oldest first.
    pub fn policy_events(&self, job: &str) -> Result<Vec<PolicyEvent>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare_cached(
            "SELECT job, at_ms, kind, from_digest, to_digest, detail FROM policy_events \
             WHERE job = ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![job], |r| {
            Ok(PolicyEvent {
                job: r.get(0)?,
                at_ms: r.get::<_, i64>(1)? as u64,
                kind: r.get(2)?,
                from_digest: r.get(3)?,
                to_digest: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the job's samples, decisions, finished rescales and policy events older than
    /// `cutoff_ms` (the job's clock), and its full observations older than
    /// `observations_cutoff_ms` (or `cutoff_ms`, if later); returns the rows deleted.
    pub fn prune(
        &self,
        job: &str,
        cutoff_ms: u64,
        observations_cutoff_ms: u64,
    ) -> Result<usize, StoreError> {
        let c = self.conn();
        let cut = cutoff_ms as i64;
        let mut n = c.execute(
            "DELETE FROM observations WHERE job = ?1 AND at_ms < ?2",
            params![job, observations_cutoff_ms.max(cutoff_ms) as i64],
        )?;
        n += c.execute(
            "DELETE FROM samples WHERE job = ?1 AND at_ms < ?2",
            params![job, cut],
        )?;
        n += c.execute(
            "DELETE FROM decisions WHERE job = ?1 AND at_ms < ?2",
            params![job, cut],
        )?;
        n += c.execute(
            "DELETE FROM rescales WHERE job = ?1 AND ((finished_ms IS NOT NULL AND finished_ms < ?2) \
             OR (finished_ms IS NULL AND outcome NOT IN ('requested', 'applied') AND requested_ms < ?2))",
            params![job, cut],
        )?;
        n += c.execute(
            "DELETE FROM policy_events WHERE job = ?1 AND at_ms < ?2",
            params![job, cut],
        )?;
        Ok(n)
    }
}

impl Store {
    /// Compacts the file (after pruning) and folds the WAL back into it.
    pub fn vacuum(&self) -> Result<(), StoreError> {
        self.conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?;
        Ok(())
    }
}

/// Converts a decision into its stored explanation JSON.
pub fn explanation_json(d: &Decision) -> serde_json::Value {
    serde_json::to_value(&d.explanation).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at: u64, role: &str) -> DecisionRecord {
        DecisionRecord {
            job: "j".into(),
            at_ms: at,
            role: role.into(),
            policy: "p".into(),
            digest: "d".into(),
            current: 2,
            proposed: 3,
            target: 3,
            clamped_by: vec!["bounds".into()],
            reason: "why".into(),
            explanation: serde_json::json!({"reason": "why", "metrics": []}),
            error: None,
        }
    }

    #[test]
    fn a_policy_override_survives_reopening_and_is_replaced_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let o = PolicyOverride {
            job: "j".into(),
            at_ms: 5,
            source: "api".into(),
            digest: "ab".into(),
            params: vec![("k".into(), "1".into())],
            wasm: vec![0, 97, 115, 109],
            basis_digest: "cd".into(),
            basis_params: vec![],
        };
        Store::open(&path).unwrap().put_policy_override(&o).unwrap();
        let s = Store::open(&path).unwrap();
        assert_eq!(s.policy_override("j").unwrap(), Some(o.clone()));
        assert_eq!(s.policy_override("other").unwrap(), None);
        let o2 = PolicyOverride {
            source: "promote:b".into(),
            ..o.clone()
        };
        s.put_policy_override(&o2).unwrap();
        assert_eq!(s.policy_override("j").unwrap(), Some(o2.clone()));
        // Another job overridden by the same component: its bytes are kept once.
        let other = PolicyOverride {
            job: "k".into(),
            ..o2
        };
        s.put_policy_override(&other).unwrap();
        let components = |s: &Store| -> i64 {
            s.conn()
                .query_row("SELECT count(*) FROM policy_component", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(components(&s), 1);
        s.clear_policy_override("j").unwrap();
        assert_eq!(s.policy_override("j").unwrap(), None);
        assert_eq!(s.policy_override("k").unwrap(), Some(other));
        assert_eq!(components(&s), 1);
        // Replaced by another component, then cleared: no bytes are left behind.
        let newer = PolicyOverride {
            digest: "ef".into(),
            wasm: vec![1, 2],
            ..o
        };
        s.put_policy_override(&PolicyOverride {
            job: "k".into(),
            ..newer
        })
        .unwrap();
        assert_eq!(components(&s), 1);
        s.clear_policy_override("k").unwrap();
        assert_eq!(components(&s), 0);
    }

    #[test]
    fn everything_survives_reopening_and_prune_bounds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        {
            let s = Store::open(&path).unwrap();
            for t in 0..10 {
                s.put_observation("j", &Observation::empty(t * 1000, 2))
                    .unwrap();
                s.put_decision(&rec(t * 1000, "active")).unwrap();
            }
            s.put_decision(&rec(9000, "hpa")).unwrap();
            let id = s.begin_rescale("j", 5000, 2, 3, "{\"job\":3}").unwrap();
            s.put_policy_state("j", "active", "d", Some(&[1, 2]))
                .unwrap();
            s.put_loop_state("j", &vec![1u32, 2]).unwrap();
            s.put_policy_event(&PolicyEvent {
                job: "j".into(),
                at_ms: 1,
                kind: "swap".into(),
                from_digest: "a".into(),
                to_digest: "b".into(),
                detail: String::new(),
            })
            .unwrap();
            assert_eq!(s.open_rescale("j").unwrap().unwrap().id, id);
        }
        let s = Store::open(&path).unwrap();
        let open = s.open_rescale("j").unwrap().unwrap();
        assert!(!open.applied);
        s.rescale_outcome(open.id, "applied").unwrap();
        assert!(s.open_rescale("j").unwrap().unwrap().applied);
        s.finish_rescale(open.id, 9000, "done").unwrap();
        assert!(s.open_rescale("j").unwrap().is_none());
        assert_eq!(s.rescales("j").unwrap()[0].duration_s, Some(4.0));
        assert_eq!(s.recent_observations("j", 3000).unwrap().len(), 4);
        assert_eq!(s.decisions("j", Some("active"), 3).unwrap()[0].at_ms, 9000);
        assert_eq!(s.decisions("j", None, 100).unwrap().len(), 11);
        assert_eq!(
            s.decisions("j", Some("hpa"), 100).unwrap()[0],
            rec(9000, "hpa")
        );
        assert_eq!(
            s.policy_state("j", "active").unwrap(),
            Some(("d".into(), Some(vec![1, 2])))
        );
        assert_eq!(s.loop_state::<Vec<u32>>("j").unwrap(), Some(vec![1, 2]));
        assert_eq!(s.policy_events("j").unwrap().len(), 1);
        assert_eq!(s.samples("j", 0).unwrap().len(), 10);
        // Requests the engine refused never finish; they are pruned by their request time.
        // An open request is kept whatever its age.
        for (at, outcome) in [(1000, "rejected"), (2000, "busy"), (6000, "rejected")] {
            let id = s.begin_rescale("j", at, 2, 3, "{\"job\":3}").unwrap();
            s.rescale_outcome(id, outcome).unwrap();
        }
        let open = s.begin_rescale("j", 1500, 2, 3, "{\"job\":3}").unwrap();
        let n = s.prune("j", 5000, 8000).unwrap();
        assert_eq!(n, 8 + 5 + 5 + 2 + 1);
        let left: Vec<u64> = s
            .rescales("j")
            .unwrap()
            .iter()
            .map(|r| r.requested_ms)
            .collect();
        assert_eq!(left, [5000, 6000, 1500]);
        assert_eq!(s.open_rescale("j").unwrap().unwrap().id, open);
        assert_eq!(s.recent_observations("j", 1 << 40).unwrap().len(), 2);
        assert_eq!(s.samples("j", 0).unwrap()[0].at_ms, 5000);
        assert!(s.loop_state::<u32>("nobody").unwrap().is_none());
    }
}
