//! How a case damages a pristine object's bytes: adversarial words, fields, random
//! bytes, flipped bits, truncation and extension; and forged ring words.

/// A small, seedable generator (SplitMix64): reproducible cases from a seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A value an attacker would try for a length, count, offset or word.
    fn adversarial(&mut self, len: usize) -> u64 {
        let len = len as u64;
        match self.below(16) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => i64::MAX as u64,
            4 => i64::MIN as u64,
            5 => u64::from(u32::MAX),
            6 => len,
            7 => len + 1,
            8 => len.saturating_sub(1),
            9 => 1 << 40,
            10 => 1 << 62,
            11 => u64::from(u32::MAX) + 1,
            12 => self.next() & 0xffff,
            13 => (self.next() & 0x3fff_ffff) | (self.next() << 32),
            _ => self.next(),
        }
    }
}

/// Damages `bytes`: forges one to three of `hot`'s words (half of the cases, when
/// there are any), or damages them in one to four ways.
pub(super) fn damage(rng: &mut Rng, pristine: &[u8], hot: &[usize]) -> Vec<u8> {
    if !hot.is_empty() && rng.below(2) == 0 {
        let mut bytes = pristine.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = hot[rng.below(hot.len())];
            forge_word(rng, &mut bytes, at);
        }
        return bytes;
    }
    mutate(rng, pristine)
}

/// Sets the word at `at` to a value an attacker would pick for a ring position or a
/// sequence word: the ends of the range, or its own value moved by a little, a lap or
/// two laps (`tail < head`, `tail > head + slots`, sequence words of other laps), or
/// with the tombstone bit flipped.
pub(super) fn forge_word(rng: &mut Rng, bytes: &mut [u8], at: usize) {
    if at + 8 > bytes.len() {
        return;
    }
    let v = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let lap = 8 + rng.below(3) as u64 * 8; // the pristine rings have 8 slots
    let forged = match rng.below(12) {
        0 => u64::MAX,
        1 => 0,
        2 => v.wrapping_sub(1),
        3 => v.wrapping_add(1),
        4 => v.wrapping_add(lap + 1),
        5 => v.wrapping_sub(lap),
        6 => v.wrapping_add(2 * lap),
        7 => v.wrapping_sub(2 * lap),
        8 => v ^ (1 << 63),
        9 => i64::MAX as u64,
        10 => u64::MAX - rng.below(16) as u64,
        _ => v.wrapping_mul(2),
    };
    bytes[at..at + 8].copy_from_slice(&forged.to_le_bytes());
}

/// Damages `bytes` in one to four ways.
pub(super) fn mutate(rng: &mut Rng, pristine: &[u8]) -> Vec<u8> {
    let mut bytes = pristine.to_vec();
    // Weighted towards the payload (lengths, counts, offsets, lock words): a damaged
    // header is refused early, so most cases should get past it.
    for _ in 0..1 + rng.below(3) {
        let len = bytes.len();
        match rng.below(20) {
            // A header (3 in 20) or payload (7 in 20) word set to an adversarial value.
            0..=9 => {
                let at = if rng.below(10) < 3 {
                    rng.below(128.min(len) / 8) * 8
                } else {
                    rng.below(len / 8) * 8
                };
                let v = rng.adversarial(len).to_le_bytes();
                let end = (at + 8).min(len);
                bytes[at..end].copy_from_slice(&v[..end - at]);
            }
            // A 4-byte field.
            10..=12 => {
                let at = rng.below(len / 4) * 4;
                let v = (rng.adversarial(len) as u32).to_le_bytes();
                let end = (at + 4).min(len);
                bytes[at..end].copy_from_slice(&v[..end - at]);
            }
            // Random bytes over a random range.
            13..=15 => {
                let at = rng.below(len);
                let n = 1 + rng.below(32.min(len - at));
                for b in &mut bytes[at..at + n] {
                    *b = rng.next() as u8;
                }
            }
            // A single bit flipped.
            16 | 17 => {
                let at = rng.below(len);
                bytes[at] ^= 1 << rng.below(8);
            }
            // Truncated (possibly below the header).
            18 => {
                let keep = 1 + rng.below(len.max(2) - 1);
                bytes.truncate(keep);
            }
            // Extended with garbage.
            _ => {
                let extra = 1 + rng.below(256);
                bytes.extend((0..extra).map(|_| rng.next() as u8));
            }
        }
        if bytes.is_empty() {
            bytes.push(0);
        }
    }
    bytes
}
