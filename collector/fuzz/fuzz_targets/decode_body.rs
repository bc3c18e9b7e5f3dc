//! Fuzzes the whole body decoder (codec selection, bounded decompression, framing, the classic
//! prefix) and checks its invariants on every input; see `collector::ingest::decode::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    collector::ingest::decode::fuzzing::check(data);
});
