//! The ledger end to end.
