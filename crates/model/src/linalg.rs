//! The inverse of a small symmetric positive definite matrix (the Fisher information of a
//! logistic regression, one row per coefficient), by Gauss–Jordan elimination with partial
//! pivoting. Written here because it is the one operation needed: a linear algebra crate
//! (LAPACK bindings or a full matrix library) would be a far larger dependency for it.

/// The inverse of the `n × n` row-major `matrix`, or `None` when it is singular (a pivot
/// below `1e-10` of the largest diagonal entry).
pub(crate) fn invert(matrix: &[f64], n: usize) -> Option<Vec<f64>> {
    let scale = (0..n)
        .map(|i| matrix[i * n + i].abs())
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let mut a = matrix.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&r, &s| a[r * n + col].abs().total_cmp(&a[s * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-10 * scale {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
                inv.swap(pivot * n + k, col * n + k);
            }
        }
        let p = a[col * n + col];
        for k in 0..n {
            a[col * n + k] /= p;
            inv[col * n + k] /= p;
        }
        for r in 0..n {
            if r == col {
                continue;
            }
            let f = a[r * n + col];
            if f == 0.0 {
                continue;
            }
            for k in 0..n {
                a[r * n + k] -= f * a[col * n + k];
                inv[r * n + k] -= f * inv[col * n + k];
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_and_refuses_singular() {
        // [[4, 7], [2, 6]]⁻¹ = [[0.6, -0.7], [-0.2, 0.4]]
        let inv = invert(&[4.0, 7.0, 2.0, 6.0], 2).unwrap();
        for (a, b) in inv.iter().zip([0.6, -0.7, -0.2, 0.4]) {
            assert!((a - b).abs() < 1e-12, "{inv:?}");
        }
        assert!(invert(&[1.0, 2.0, 2.0, 4.0], 2).is_none());
    }
}
