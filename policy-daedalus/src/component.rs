//! The component glue: the export, nothing else.

use crate::Daedalus;

daedalus_policy_sdk::export_policy!(Daedalus);
