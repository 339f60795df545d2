//! The state blob: consecutive significant evaluations (for `activation_count`).

use daedalus_policy_sdk::PolicyError;

const MAGIC: &[u8; 4] = b"ds21";

/// Encodes the evaluation counter.
pub(crate) fn encode(evaluations: u32) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&evaluations.to_le_bytes());
    v
}

/// Decodes a blob from [`encode`]; no blob is a fresh start.
pub(crate) fn decode(blob: Option<&[u8]>) -> Result<u32, PolicyError> {
    let Some(blob) = blob else { return Ok(0) };
    match blob.split_at_checked(4) {
        Some((magic, rest)) if magic == MAGIC && rest.len() == 4 => Ok(u32::from_le_bytes(
            rest.try_into().expect("length checked above"),
        )),
        _ => Err(PolicyError::InvalidState("not a ds2 state blob".into())),
    }
}
