//! MD5 of several messages at once: the digests a batch of KPL aggregated records needs.
//!
//! One MD5 stream cannot go faster than its chain of dependent steps allows (a few hundred MB/s,
//! figures below), but independent messages can share the work: with
//! AVX2, eight messages go through the 64 steps side by side, one per 32-bit lane of a 256-bit
//! register. The CPU is checked at run time (`is_x86_feature_detected!`); without AVX2, or for a
//! single message, the portable `md-5` crate computes each digest in turn.
//!
//! Figures: the digests of eight 256 KiB messages (the aggregated records of one batch), median
//! of 41 runs, AMD EPYC with AVX2, 2 cores shared with other builds (load about 9), measured
//! with the inputs of the `md5_of_eight_records` bench in `collector/benches/hot_path.rs` in a
//! standalone build (`rustc -O -C lto=fat`, the release `md-5`):
//! - one after the other with `md-5`: 8.4 to 9.1 ms, 230 to 250 MB/s;
//! - eight lanes with AVX2: 0.69 to 0.93 ms, 2.3 to 3.0 GB/s (about ten times as fast).
//!
//! In the collector (`scripts/bench`, `memory-aggregate`, `perf record`), MD5 went from 33% of
//! the process's CPU samples (`md5::compress::soft::compress`) to 8% (`digest8`).
//!
//! A published multi-buffer crate exists (`md5-many`), but only as an alpha pre-release; the
//! kernel here is small enough to keep, and its tests check it against `md-5` on every length up
//! to 3,100 bytes and on mixed lengths across lanes.
//!
//! Invariant: [`digests`] returns exactly what `md5::Md5::digest` returns for each message, in
//! the order given, whatever the lengths and the CPU.

use md5::{Digest, Md5};

/// An MD5 digest.
pub type Digest16 = [u8; 16];

/// The MD5 digest of each message, in order.
pub fn digests(msgs: &[&[u8]]) -> Vec<Digest16> {
    let mut out = vec![[0u8; 16]; msgs.len()];
    #[cfg(target_arch = "x86_64")]
    if msgs.len() > 1 && std::arch::is_x86_feature_detected!("avx2") {
        for (group, dst) in msgs.chunks(x8::LANES).zip(out.chunks_mut(x8::LANES)) {
            if group.len() == 1 {
                dst[0] = one(group[0]);
            } else {
                // SAFETY: the CPU has AVX2 (checked just above), which is all `digest8` needs.
                unsafe { x8::digest8(group, dst) };
            }
        }
        return out;
    }
    for (m, d) in msgs.iter().zip(out.iter_mut()) {
        *d = one(m);
    }
    out
}

/// One message's digest (the portable path).
pub fn one(msg: &[u8]) -> Digest16 {
    Md5::digest(msg).into()
}

#[cfg(target_arch = "x86_64")]
mod x8 {
    use super::Digest16;
    use std::arch::x86_64::*;

    pub const LANES: usize = 8;

    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];

    const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

    const ZERO_BLOCK: [u8; 64] = [0; 64];

    /// One lane's message: its whole 64-byte blocks are read in place, the last one or two
    /// (the rest of the message, `0x80`, zeros, the bit length) from `tail`.
    struct Lane<'a> {
        msg: &'a [u8],
        whole: usize,
        blocks: usize,
        tail: [u8; 128],
    }

    impl<'a> Lane<'a> {
        fn new(msg: &'a [u8]) -> Lane<'a> {
            let whole = msg.len() / 64;
            let blocks = (msg.len() + 8) / 64 + 1;
            let mut tail = [0u8; 128];
            let rest = &msg[whole * 64..];
            tail[..rest.len()].copy_from_slice(rest);
            tail[rest.len()] = 0x80;
            let end = (blocks - whole) * 64;
            tail[end - 8..end].copy_from_slice(&((msg.len() as u64).wrapping_mul(8)).to_le_bytes());
            Lane {
                msg,
                whole,
                blocks,
                tail,
            }
        }

        /// Block `b` of the padded message (a zero block past its end: that lane's result is
        /// taken before, so what it computes then is thrown away).
        fn block(&self, b: usize) -> &[u8; 64] {
            let s = if b < self.whole {
                &self.msg[b * 64..b * 64 + 64]
            } else if b < self.blocks {
                &self.tail[(b - self.whole) * 64..(b - self.whole) * 64 + 64]
            } else {
                &ZERO_BLOCK[..]
            };
            s.try_into().unwrap_or(&ZERO_BLOCK)
        }
    }

    /// Eight 32-byte rows of eight words each, turned into eight columns (column `j` holds word
    /// `j` of every row, row `i` in lane `i`).
    #[target_feature(enable = "avx2")]
    fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }

    /// Loads 32 bytes.
    #[target_feature(enable = "avx2")]
    fn load(bytes: &[u8; 32]) -> __m256i {
        // SAFETY: `bytes` is 32 readable bytes, exactly what an unaligned 256-bit load reads.
        unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
    }

    /// The eight lanes of a register.
    #[target_feature(enable = "avx2")]
    fn lanes(v: __m256i) -> [u32; 8] {
        let mut out = [0u32; 8];
        // SAFETY: `out` is 32 writable bytes, exactly what an unaligned 256-bit store writes.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) };
        out
    }

    fn half(block: &[u8; 64], second: bool) -> &[u8; 32] {
        let s = if second { &block[32..] } else { &block[..32] };
        s.try_into().unwrap_or(&[0u8; 32])
    }

    /// The digests of up to eight messages (`dst` as long as `msgs`).
    #[target_feature(enable = "avx2")]
    pub fn digest8(msgs: &[&[u8]], dst: &mut [Digest16]) {
        let empty: &[u8] = &[];
        let lanes_in: Vec<Lane> = (0..LANES)
            .map(|i| Lane::new(msgs.get(i).copied().unwrap_or(empty)))
            .collect();
        let most = lanes_in.iter().map(|l| l.blocks).max().unwrap_or(0);
        let mut st = [
            _mm256_set1_epi32(INIT[0] as i32),
            _mm256_set1_epi32(INIT[1] as i32),
            _mm256_set1_epi32(INIT[2] as i32),
            _mm256_set1_epi32(INIT[3] as i32),
        ];
        for b in 0..most {
            let blocks: [&[u8; 64]; 8] = std::array::from_fn(|i| lanes_in[i].block(b));
            let lo = transpose(std::array::from_fn(|i| load(half(blocks[i], false))));
            let hi = transpose(std::array::from_fn(|i| load(half(blocks[i], true))));
            let w: [__m256i; 16] = std::array::from_fn(|j| if j < 8 { lo[j] } else { hi[j - 8] });
            compress(&mut st, &w);
            if lanes_in.iter().take(dst.len()).any(|l| l.blocks == b + 1) {
                let words = [lanes(st[0]), lanes(st[1]), lanes(st[2]), lanes(st[3])];
                for (i, d) in dst.iter_mut().enumerate() {
                    if lanes_in[i].blocks == b + 1 {
                        for (k, word) in words.iter().enumerate() {
                            d[k * 4..k * 4 + 4].copy_from_slice(&word[i].to_le_bytes());
                        }
                    }
                }
            }
        }
    }

    // The four mixing functions, in forms with fewer operations:
    // F = d ^ (b & (c ^ d)); G = c ^ (d & (b ^ c)); H = b ^ c ^ d; I = c ^ (b | !d).
    #[target_feature(enable = "avx2")]
    fn f(b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d)))
    }

    #[target_feature(enable = "avx2")]
    fn g(b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        _mm256_xor_si256(c, _mm256_and_si256(d, _mm256_xor_si256(b, c)))
    }

    #[target_feature(enable = "avx2")]
    fn h(b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_xor_si256(b, c), d)
    }

    #[target_feature(enable = "avx2")]
    fn i(b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        _mm256_xor_si256(
            c,
            _mm256_or_si256(b, _mm256_xor_si256(d, _mm256_set1_epi32(-1))),
        )
    }

    /// One 64-byte block for every lane.
    #[target_feature(enable = "avx2")]
    fn compress(st: &mut [__m256i; 4], w: &[__m256i; 16]) {
        let [mut a, mut b, mut c, mut d] = *st;
        macro_rules! step {
            ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $g:expr, $i:expr, $s:literal) => {{
                let f = $f($b, $c, $d);
                let sum = _mm256_add_epi32(
                    _mm256_add_epi32($a, f),
                    _mm256_add_epi32(_mm256_set1_epi32(K[$i] as i32), w[$g]),
                );
                let rot = _mm256_or_si256(
                    _mm256_slli_epi32::<$s>(sum),
                    _mm256_srli_epi32::<{ 32 - $s }>(sum),
                );
                $a = _mm256_add_epi32($b, rot);
            }};
        }
        macro_rules! four {
            ($f:ident, $g0:expr, $g1:expr, $g2:expr, $g3:expr, $i:expr, $s0:literal, $s1:literal, $s2:literal, $s3:literal) => {
                step!($f, a, b, c, d, $g0, $i, $s0);
                step!($f, d, a, b, c, $g1, $i + 1, $s1);
                step!($f, c, d, a, b, $g2, $i + 2, $s2);
                step!($f, b, c, d, a, $g3, $i + 3, $s3);
            };
        }
        four!(f, 0, 1, 2, 3, 0, 7, 12, 17, 22);
        four!(f, 4, 5, 6, 7, 4, 7, 12, 17, 22);
        four!(f, 8, 9, 10, 11, 8, 7, 12, 17, 22);
        four!(f, 12, 13, 14, 15, 12, 7, 12, 17, 22);
        four!(g, 1, 6, 11, 0, 16, 5, 9, 14, 20);
        four!(g, 5, 10, 15, 4, 20, 5, 9, 14, 20);
        four!(g, 9, 14, 3, 8, 24, 5, 9, 14, 20);
        four!(g, 13, 2, 7, 12, 28, 5, 9, 14, 20);
        four!(h, 5, 8, 11, 14, 32, 4, 11, 16, 23);
        four!(h, 1, 4, 7, 10, 36, 4, 11, 16, 23);
        four!(h, 13, 0, 3, 6, 40, 4, 11, 16, 23);
        four!(h, 9, 12, 15, 2, 44, 4, 11, 16, 23);
        four!(i, 0, 7, 14, 5, 48, 6, 10, 15, 21);
        four!(i, 12, 3, 10, 1, 52, 6, 10, 15, 21);
        four!(i, 8, 15, 6, 13, 56, 6, 10, 15, 21);
        four!(i, 4, 11, 2, 9, 60, 6, 10, 15, 21);
        st[0] = _mm256_add_epi32(st[0], a);
        st[1] = _mm256_add_epi32(st[1], b);
        st[2] = _mm256_add_epi32(st[2], c);
        st[3] = _mm256_add_epi32(st[3], d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes (xorshift), so a failure can be reproduced.
    fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn every_length_up_to_a_few_kib_matches_md5() {
        // Eight lanes of one length each time, 0 to 3,100 bytes: every padding case (one or two
        // tail blocks, a message ending on a block edge) in every lane.
        for len in 0..3100usize {
            let msgs: Vec<Vec<u8>> = (0..8)
                .map(|i| random_bytes((len * 8 + i) as u64, len))
                .collect();
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            let got = digests(&refs);
            for (m, d) in refs.iter().zip(&got) {
                assert_eq!(*d, one(m), "length {len}");
            }
        }
    }

    #[test]
    fn mixed_lengths_across_lanes_and_partial_groups_match_md5() {
        let mut seed = 7u64;
        for count in 1..=19usize {
            for round in 0..12 {
                let msgs: Vec<Vec<u8>> = (0..count)
                    .map(|i| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let len = match (round + i) % 4 {
                            0 => (seed >> 33) as usize % 130,
                            1 => (seed >> 33) as usize % 5000,
                            2 => 64 * ((seed >> 33) as usize % 40) + 55 + (i % 3),
                            _ => (seed >> 33) as usize % 20_000,
                        };
                        random_bytes(seed, len)
                    })
                    .collect();
                let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                let got = digests(&refs);
                assert_eq!(got.len(), count);
                for (m, d) in refs.iter().zip(&got) {
                    assert_eq!(*d, one(m), "{count} messages, length {}", m.len());
                }
            }
        }
    }

    #[test]
    fn known_digests() {
        let msgs: [&[u8]; 3] = [b"", b"abc", b"The quick brown fox jumps over the lazy dog"];
        let got = digests(&msgs);
        let hex: Vec<String> = got
            .iter()
            .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        assert_eq!(
            hex,
            [
                "d41d8cd98f00b204e9800998ecf8427e",
                "900150983cd24fb0d6963f7d28e17f72",
                "9e107d9d372bb6826bd81d3542a419d6"
            ]
        );
    }
}
