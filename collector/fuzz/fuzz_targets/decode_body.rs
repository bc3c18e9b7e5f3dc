//! Fuzzes the whole body decoder (codec selection, bounded decompression, framing, the classic
//! prefix) and checks its invariants on every input; see `fuzzing` in the collector's `ingest/decode.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    collector::__internals::fuzzing::check(data);
});
