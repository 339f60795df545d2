//! The state blob: the time of the last evaluation, so evaluations keep the sync period.

use daedalus_policy_sdk::PolicyError;

const MAGIC: &[u8; 4] = b"hpa1";

/// Encodes the last evaluation time.
pub(crate) fn encode(last_eval_ms: u64) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&last_eval_ms.to_le_bytes());
    v
}

/// Decodes a blob from [`encode`]; `None` input is a fresh start.
pub(crate) fn decode(blob: Option<&[u8]>) -> Result<Option<u64>, PolicyError> {
    let Some(blob) = blob else { return Ok(None) };
    match blob.split_at_checked(4) {
        Some((magic, rest)) if magic == MAGIC && rest.len() == 8 => {
            let bytes: [u8; 8] = rest.try_into().expect("length checked above");
            Ok(Some(u64::from_le_bytes(bytes)))
        }
        _ => Err(PolicyError::InvalidState("not an hpa state blob".into())),
    }
}
