//! A consumer group through the Kafka protocol: its state and members with their assigned
//! partitions (DescribeGroups), and its committed offsets (OffsetFetch). rskafka has neither,
//! so these two calls go over their own connection to the group's coordinator, with the
//! message codecs of the `kafka-protocol` crate (generated from Kafka's own schemas).
//!
//! A Kafka Streams application is a consumer group named by its `application.id`. Its
//! committed offsets give the lag the policies need: under a backlog a consumer stops fetching
//! partitions whose buffer is full, so its own `records-lag` metric goes stale, while the
//! committed offsets move with every commit (every 100 ms under `exactly_once_v2`).
//!
//! The requests use FindCoordinator v3, DescribeGroups v5 and OffsetFetch v7: brokers from
//! Kafka 2.5 on answer them.

use crate::engine::EngineError;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::ConsumerProtocolAssignment;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, OffsetFetchRequest, OffsetFetchResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FIND_COORDINATOR_VERSION: i16 = 3;
const DESCRIBE_GROUPS_VERSION: i16 = 5;
const OFFSET_FETCH_VERSION: i16 = 7;
/// A response larger than this is refused rather than allocated (a group of thousands of
/// members stays far below it).
const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Kafka's `GROUP_ID_NOT_FOUND`.
const GROUP_ID_NOT_FOUND: i16 = 69;

/// What DescribeGroups says of a group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupView {
    /// `Stable`, `PreparingRebalance`, `CompletingRebalance`, `Empty` or `Dead`.
    pub state: String,
    /// The members, each with the partitions it was assigned (empty during a rebalance).
    pub members: Vec<GroupMember>,
}

/// One member of a consumer group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupMember {
    /// The member's `client.id` (Kafka Streams: `<app>-<process>-StreamThread-<n>-consumer`).
    pub client_id: String,
    /// The member's host as the broker saw it.
    pub client_host: String,
    /// A static member's `group.instance.id`; `None` for a dynamic member.
    pub instance_id: Option<String>,
    /// Assigned partitions, by topic.
    pub partitions: BTreeMap<String, Vec<i32>>,
}

impl GroupView {
    /// Whether the group is stable (no rebalance in progress).
    pub fn is_stable(&self) -> bool {
        self.state == "Stable"
    }

    /// The partitions of `topic` that some member owns.
    pub fn assigned(&self, topic: &str) -> BTreeSet<i32> {
        self.members
            .iter()
            .filter_map(|m| m.partitions.get(topic))
            .flatten()
            .copied()
            .collect()
    }

    /// How many members own at least one partition of `topic`.
    pub fn busy_members(&self, topic: &str) -> usize {
        self.members
            .iter()
            .filter(|m| m.partitions.get(topic).is_some_and(|p| !p.is_empty()))
            .count()
    }
}

/// The total lag: per partition, the end offset minus the committed one, never negative. A
/// partition with nothing committed yet counts from its first offset still in the log
/// (`starts`, where known: a new consumer reads from there, not from records retention
/// deleted), else whole.
pub fn lag(
    ends: &BTreeMap<i32, i64>,
    committed: &BTreeMap<i32, i64>,
    starts: &BTreeMap<i32, i64>,
) -> f64 {
    ends.iter()
        .map(|(p, end)| {
            let from = committed
                .get(p)
                .or_else(|| starts.get(p))
                .copied()
                .unwrap_or(0);
            (end - from).max(0) as f64
        })
        .sum()
}

/// A consumer group on a cluster; reconnects (and finds the coordinator again) after any
/// failure.
#[derive(Debug)]
pub struct ConsumerGroup {
    bootstrap: Vec<String>,
    group: String,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<Connection>>,
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    endpoint: String,
    correlation: i32,
}

impl ConsumerGroup {
    /// The group `group` on the cluster at `bootstrap` (`host:port`, several separated by
    /// commas); every call gives up after `timeout`.
    pub fn new(bootstrap: &str, group: &str, timeout: Duration) -> Self {
        ConsumerGroup {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            group: group.to_string(),
            timeout,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// The group's id.
    pub fn group(&self) -> &str {
        &self.group
    }

    fn endpoint(&self) -> String {
        format!("kafka://{}/groups/{}", self.bootstrap.join(","), self.group)
    }

    /// The group's state and members.
    pub async fn describe(&self) -> Result<GroupView, EngineError> {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(self.group.clone()))]);
        let resp: DescribeGroupsResponse = self
            .call(ApiKey::DescribeGroups, DESCRIBE_GROUPS_VERSION, &req)
            .await?;
        let endpoint = self.endpoint();
        let Some(g) = resp.groups.into_iter().next() else {
            return Err(malformed(&endpoint, "DescribeGroups answered no group"));
        };
        if g.error_code == GROUP_ID_NOT_FOUND {
            // Newer coordinators say so for a group nobody has joined yet; older ones answer
            // `Dead` with no members, which is what this is.
            return Ok(GroupView {
                state: "Dead".into(),
                members: Vec::new(),
            });
        }
        self.check_answer("DescribeGroups", g.error_code).await?;
        let mut members = Vec::new();
        for m in g.members {
            members.push(GroupMember {
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                instance_id: m.group_instance_id.map(|i| i.to_string()),
                partitions: decode_assignment(&m.member_assignment)
                    .map_err(|d| malformed(&endpoint, &d))?,
            });
        }
        Ok(GroupView {
            state: g.group_state.to_string(),
            members,
        })
    }

    /// The group's committed offsets on `partitions` of `topic` (a partition without one is
    /// left out).
    pub async fn committed(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, EngineError> {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_indexes(partitions.to_vec()),
            ]))
            // Offsets of an open transaction are not waited for: the last committed ones do.
            .with_require_stable(false);
        let resp: OffsetFetchResponse = self
            .call(ApiKey::OffsetFetch, OFFSET_FETCH_VERSION, &req)
            .await?;
        self.check_answer("OffsetFetch", resp.error_code).await?;
        let mut out = BTreeMap::new();
        for t in resp
            .topics
            .into_iter()
            .filter(|t| t.name.0.as_str() == topic)
        {
            for p in t.partitions {
                self.check_answer("OffsetFetch", p.error_code).await?;
                if p.committed_offset >= 0 {
                    out.insert(p.partition_index, p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// [`check`], and on a coordinator error in an answer also drops the connection, so the
    /// next call asks where the group's coordinator is now (it moves with the leadership of
    /// its `__consumer_offsets` partition; the broker that answered is no longer it).
    async fn check_answer(&self, call: &str, code: i16) -> Result<(), EngineError> {
        if coordinator_moved(code) {
            *self.conn.lock().await = None;
        }
        check(&self.endpoint(), call, code)
    }

    /// Sends `req` to the coordinator and decodes its answer; the connection is dropped after
    /// any failure, so the next call finds the coordinator again.
    async fn call<Q: Encodable + HeaderVersion, R: Decodable + HeaderVersion>(
        &self,
        key: ApiKey,
        version: i16,
        req: &Q,
    ) -> Result<R, EngineError> {
        let mut guard = self.conn.lock().await;
        let result = tokio::time::timeout(self.timeout, async {
            if guard.is_none() {
                *guard = Some(self.connect_coordinator().await?);
            }
            let conn = guard.as_mut().expect("set above");
            exchange::<Q, R>(conn, key, version, req).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(EngineError::Timeout {
                endpoint: self.endpoint(),
                timeout_ms: self.timeout.as_millis() as u64,
            })
        });
        if result.is_err() {
            *guard = None;
        }
        result
    }

    /// Asks the bootstrap brokers, in turn, for the group's coordinator and connects to it.
    async fn connect_coordinator(&self) -> Result<Connection, EngineError> {
        let mut last = None;
        for b in &self.bootstrap {
            let attempt = async {
                let mut conn = Connection::open(b).await?;
                let req = FindCoordinatorRequest::default()
                    .with_key(StrBytes::from_string(self.group.clone()))
                    .with_key_type(0);
                let resp: FindCoordinatorResponse = exchange(
                    &mut conn,
                    ApiKey::FindCoordinator,
                    FIND_COORDINATOR_VERSION,
                    &req,
                )
                .await?;
                check(&conn.endpoint, "FindCoordinator", resp.error_code)?;
                let addr = format!("{}:{}", resp.host, resp.port);
                if addr == *b {
                    Ok(conn)
                } else {
                    Connection::open(&addr).await
                }
            };
            match attempt.await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| EngineError::Other("no bootstrap broker given".into())))
    }
}

impl Connection {
    async fn open(addr: &str) -> Result<Self, EngineError> {
        let endpoint = format!("kafka://{addr}");
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| EngineError::Unreachable {
                endpoint: endpoint.clone(),
                detail: e.to_string(),
            })?;
        stream.set_nodelay(true).ok();
        Ok(Connection {
            stream,
            endpoint,
            correlation: 0,
        })
    }
}

/// One request and its response on `conn`: a size-prefixed frame each way.
async fn exchange<Q: Encodable + HeaderVersion, R: Decodable + HeaderVersion>(
    conn: &mut Connection,
    key: ApiKey,
    version: i16,
    req: &Q,
) -> Result<R, EngineError> {
    let endpoint = conn.endpoint.clone();
    let encode_err = |e: anyhow::Error| EngineError::Other(format!("cannot encode {key:?}: {e}"));
    conn.correlation = conn.correlation.wrapping_add(1);
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(conn.correlation)
        .with_client_id(Some(StrBytes::from_static_str("daedalus")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, Q::header_version(version))
        .map_err(encode_err)?;
    req.encode(&mut body, version).map_err(encode_err)?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    let io = |e: std::io::Error| EngineError::Unreachable {
        endpoint: endpoint.clone(),
        detail: e.to_string(),
    };
    conn.stream.write_all(&frame).await.map_err(io)?;
    let size = conn.stream.read_i32().await.map_err(io)?;
    if size < 0 || size as usize > MAX_RESPONSE_BYTES {
        return Err(malformed(
            &endpoint,
            &format!("{key:?} response of {size} bytes"),
        ));
    }
    let mut buf = vec![0u8; size as usize];
    conn.stream.read_exact(&mut buf).await.map_err(io)?;
    let mut buf = Bytes::from(buf);
    let header = ResponseHeader::decode(&mut buf, R::header_version(version))
        .map_err(|e| malformed(&endpoint, &format!("{key:?} response header: {e}")))?;
    if header.correlation_id != conn.correlation {
        return Err(malformed(
            &endpoint,
            &format!(
                "{key:?} response for request {} while waiting for {}",
                header.correlation_id, conn.correlation
            ),
        ));
    }
    R::decode(&mut buf, version).map_err(|e| malformed(&endpoint, &format!("{key:?}: {e}")))
}

/// A member's assignment: the consumer protocol's version, then the assignment at it (a
/// member that has none yet sends an empty one).
fn decode_assignment(raw: &Bytes) -> Result<BTreeMap<String, Vec<i32>>, String> {
    let mut out = BTreeMap::new();
    if raw.is_empty() {
        return Ok(out);
    }
    let mut buf = raw.clone();
    if buf.remaining() < 2 {
        return Err("a member assignment shorter than its version".into());
    }
    // Later versions only add fields at the end, so the newest one we know reads them all.
    let version = buf.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|e| format!("member assignment: {e}"))?;
    for tp in a.assigned_partitions {
        out.entry(tp.topic.0.to_string())
            .or_insert_with(Vec::new)
            .extend(tp.partitions);
    }
    Ok(out)
}

fn malformed(endpoint: &str, detail: &str) -> EngineError {
    EngineError::Malformed {
        endpoint: endpoint.to_string(),
        detail: detail.to_string(),
    }
}

/// Whether Kafka error `code` means the connected broker is not (or not yet) the group's
/// coordinator: COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
fn coordinator_moved(code: i16) -> bool {
    matches!(code, 14..=16)
}

/// A Kafka error code as an error: the coordinator moved or is loading (retried on the next
/// call, which finds it again), the group or topic is unknown, or anything else by number.
fn check(endpoint: &str, call: &str, code: i16) -> Result<(), EngineError> {
    let what = match code {
        0 => return Ok(()),
        14 => "the coordinator is loading the group",
        15 => "the coordinator is not available",
        16 => "this broker is not the group's coordinator",
        25 => "unknown member",
        29 => "not authorized for this topic",
        30 => "not authorized for this group",
        GROUP_ID_NOT_FOUND => "the group does not exist",
        3 => "unknown topic or partition",
        _ => "",
    };
    Err(EngineError::Other(if what.is_empty() {
        format!("{endpoint}: {call} failed with Kafka error code {code}")
    } else {
        format!("{endpoint}: {call} failed: {what} (Kafka error code {code})")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;

    #[test]
    fn only_coordinator_errors_make_the_next_call_find_the_coordinator_again() {
        for code in [14, 15, 16] {
            assert!(coordinator_moved(code), "{code}");
            assert!(check("e", "c", code).is_err());
        }
        for code in [0, 3, 25, 29, 30, GROUP_ID_NOT_FOUND, -1] {
            assert!(!coordinator_moved(code), "{code}");
        }
    }

    #[test]
    fn lag_counts_uncommitted_partitions_whole_and_never_goes_negative() {
        let ends = BTreeMap::from([(0, 100), (1, 50), (2, 10)]);
        let committed = BTreeMap::from([(0, 40), (2, 12)]);
        assert_eq!(lag(&ends, &committed, &BTreeMap::new()), 60.0 + 50.0);
    }

    #[test]
    fn an_uncommitted_partition_counts_from_its_log_start() {
        // A million records written, all but the last thousand deleted by retention.
        let ends = BTreeMap::from([(0, 1_000_000), (1, 50)]);
        let committed = BTreeMap::from([(1, 40)]);
        let starts = BTreeMap::from([(0, 999_000), (1, 0)]);
        assert_eq!(lag(&ends, &committed, &starts), 1_000.0 + 10.0);
    }

    fn assignment(version: i16, parts: &[(&str, &[i32])]) -> Bytes {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
            parts
                .iter()
                .map(|(t, p)| {
                    TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(p.to_vec())
                })
                .collect(),
        );
        let mut b = BytesMut::new();
        b.put_i16(version);
        a.encode(&mut b, version.min(3)).unwrap();
        b.freeze()
    }

    #[test]
    fn member_assignments_decode_at_their_version() {
        for v in [0, 1, 3, 4] {
            let got =
                decode_assignment(&assignment(v, &[("words", &[0, 2]), ("other", &[1])])).unwrap();
            assert_eq!(got["words"], vec![0, 2], "version {v}");
            assert_eq!(got["other"], vec![1]);
        }
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0, 0, 0, 9])).is_err());
    }

    #[test]
    fn the_view_tells_a_stable_group_and_who_owns_what() {
        let member = |p: &[i32]| GroupMember {
            partitions: BTreeMap::from([("words".to_string(), p.to_vec())]),
            ..GroupMember::default()
        };
        let v = GroupView {
            state: "Stable".into(),
            members: vec![member(&[0, 1]), member(&[3]), member(&[])],
        };
        assert!(v.is_stable());
        assert_eq!(v.assigned("words"), BTreeSet::from([0, 1, 3]));
        assert_eq!(v.busy_members("words"), 2);
        assert!(v.assigned("counts").is_empty());
    }

    #[test]
    fn error_codes_name_what_went_wrong() {
        assert!(check("e", "OffsetFetch", 0).is_ok());
        let e = check("e", "OffsetFetch", 16).unwrap_err().to_string();
        assert!(e.contains("not the group's coordinator"), "{e}");
        let e = check("e", "DescribeGroups", 99).unwrap_err().to_string();
        assert!(e.contains("code 99"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_an_error_not_a_hang() {
        let g = ConsumerGroup::new("127.0.0.1:1", "g", Duration::from_secs(2));
        let e = g.committed("t", &[0]).await.unwrap_err();
        assert!(matches!(e, EngineError::Unreachable { .. }), "{e:?}");
    }
}
