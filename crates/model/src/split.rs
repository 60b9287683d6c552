//! The train/test split by patient: every row of one person falls on the same side, decided
//! by a hash of the seed and the person's key, so the split is the same in every run and in
//! every process, and does not depend on the order of rows.

/// FNV-1a over the seed's bytes and the key, then a final mix (splitmix64) so that nearby keys
/// spread.
fn hash(seed: u64, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(key) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Whether the person with `key` is in the test set, which holds about `test_fraction` of
/// the people.
pub fn in_test(seed: u64, key: &[u8], test_fraction: f64) -> bool {
    let unit = (hash(seed, key) >> 11) as f64 / (1u64 << 53) as f64;
    unit < test_fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stable_and_near_its_fraction() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("P{i:06}")).collect();
        let test: Vec<bool> = keys
            .iter()
            .map(|k| in_test(42, k.as_bytes(), 0.3))
            .collect();
        let share = test.iter().filter(|t| **t).count() as f64 / keys.len() as f64;
        assert!((share - 0.3).abs() < 0.02, "{share}");
        // Same seed, same split; another seed, another.
        assert!(
            keys.iter()
                .zip(&test)
                .all(|(k, t)| in_test(42, k.as_bytes(), 0.3) == *t)
        );
        let other: Vec<bool> = keys.iter().map(|k| in_test(7, k.as_bytes(), 0.3)).collect();
        assert_ne!(test, other);
    }
}
