//! String similarity on the hot path. Most compared values are short ASCII (names, dates,
//! postcodes), so these work on bytes with the match flags in a bit mask and the edit rows on
//! the stack, and fall back to `strsim` for anything else. Results equal `strsim`'s (a property
//! test checks).

/// Jaro-Winkler similarity (prefix scale 0.1, prefix up to 4, boost above 0.7), as `strsim::jaro_winkler`.
pub(crate) fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if !a.is_ascii() || !b.is_ascii() || x.len() > 64 || y.len() > 64 {
        return strsim::jaro_winkler(a, b);
    }
    let jaro = jaro_ascii(x, y);
    // Winkler's boost applies to strings already alike.
    if jaro <= 0.7 {
        return jaro;
    }
    let prefix = x.iter().zip(y).take(4).take_while(|(p, q)| p == q).count() as f64;
    jaro + 0.1 * prefix * (1.0 - jaro)
}

fn jaro_ascii(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let (mut a_flags, mut b_flags) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for (j, cb) in b.iter().enumerate().take(hi).skip(lo) {
            if b_flags & (1 << j) == 0 && ca == cb {
                a_flags |= 1 << i;
                b_flags |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0usize;
    for (i, ca) in a.iter().enumerate() {
        if a_flags & (1 << i) == 0 {
            continue;
        }
        while b_flags & (1 << j) == 0 {
            j += 1;
        }
        if *ca != b[j] {
            transpositions += 1;
        }
        j += 1;
    }
    let m = matches as f64;
    let t = (transpositions / 2) as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

/// Optimal string alignment distance (edits: insert, delete, substitute, swap adjacent), as
/// `strsim::osa_distance`.
pub(crate) fn osa_distance(a: &str, b: &str) -> usize {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    const MAX: usize = 32;
    if !a.is_ascii() || !b.is_ascii() || x.len() > MAX || y.len() > MAX {
        return strsim::osa_distance(a, b);
    }
    if x.is_empty() {
        return y.len();
    }
    if y.is_empty() {
        return x.len();
    }
    // Three rows (two rows back, previous, current) rotated by index, not copied.
    let mut rows = [[0u8; MAX + 1]; 3];
    for (j, cell) in rows[1].iter_mut().enumerate().take(y.len() + 1) {
        *cell = j as u8;
    }
    let (mut two_ago, mut prev, mut curr) = (0usize, 1usize, 2usize);
    for i in 1..=x.len() {
        rows[curr][0] = i as u8;
        for j in 1..=y.len() {
            let cost = u8::from(x[i - 1] != y[j - 1]);
            let mut best = (rows[prev][j] + 1)
                .min(rows[curr][j - 1] + 1)
                .min(rows[prev][j - 1] + cost);
            if i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] {
                best = best.min(rows[two_ago][j - 2] + 1);
            }
            rows[curr][j] = best;
        }
        (two_ago, prev, curr) = (prev, curr, two_ago);
    }
    usize::from(rows[prev][y.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn equal_to_strsim(a in "[a-e ]{0,12}|\\PC{0,8}", b in "[a-e ]{0,12}|\\PC{0,8}") {
            prop_assert!((jaro_winkler(&a, &b) - strsim::jaro_winkler(&a, &b)).abs() < 1e-12);
            prop_assert_eq!(osa_distance(&a, &b), strsim::osa_distance(&a, &b));
        }
    }

    #[test]
    fn known_values() {
        assert!((jaro_winkler("martha", "marhta") - 0.9611).abs() < 1e-4);
        assert_eq!(osa_distance("19800307", "19800370"), 1);
        assert_eq!(osa_distance("ca", "abc"), 3);
    }
}
