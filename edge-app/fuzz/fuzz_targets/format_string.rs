//! Any format string either parses or is an error; a parsed one renders one line within the
//! limit, for a request full of hostile text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let spec = String::from_utf8_lossy(data);
    edgelog::__fuzz::check_invariants(&spec);
});
