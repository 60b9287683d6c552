//! Accuracy against known true pairs: precision, recall and F1.

use std::collections::HashSet;
use std::fmt;

/// Every pair of members within each group: the record pairs a clustering (or a truth given as
/// groups) implies.
pub fn pairs_within<'a, T: Clone + 'a>(groups: impl IntoIterator<Item = &'a [T]>) -> Vec<(T, T)> {
    let mut pairs = Vec::new();
    for members in groups {
        for (i, a) in members.iter().enumerate() {
            for b in &members[i + 1..] {
                pairs.push((a.clone(), b.clone()));
            }
        }
    }
    pairs
}

/// Pairwise accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Pairs that are truly the same person.
    pub true_pairs: u64,
    /// Pairs the linker called the same person.
    pub predicted_pairs: u64,
    /// Predicted pairs that are true.
    pub true_positives: u64,
}

impl Accuracy {
    /// Compares predicted pairs with the true ones; order within a pair does not matter and
    /// repeats count once.
    pub fn measure<'a>(
        predicted: impl IntoIterator<Item = (&'a str, &'a str)>,
        truth: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let ordered = |(a, b): (&'a str, &'a str)| if a <= b { (a, b) } else { (b, a) };
        let truth: HashSet<(&str, &str)> = truth.into_iter().map(ordered).collect();
        let predicted: HashSet<(&str, &str)> = predicted.into_iter().map(ordered).collect();
        let true_positives = predicted.iter().filter(|p| truth.contains(*p)).count() as u64;
        Self {
            true_pairs: truth.len() as u64,
            predicted_pairs: predicted.len() as u64,
            true_positives,
        }
    }

    /// Share of predicted pairs that are true.
    pub fn precision(&self) -> f64 {
        if self.predicted_pairs == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.predicted_pairs as f64
        }
    }

    /// Share of true pairs found.
    pub fn recall(&self) -> f64 {
        if self.true_pairs == 0 {
            1.0
        } else {
            self.true_positives as f64 / self.true_pairs as f64
        }
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

impl fmt::Display for Accuracy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "precision {:.4}, recall {:.4}, F1 {:.4} ({} predicted, {} true, {} correct)",
            self.precision(),
            self.recall(),
            self.f1(),
            self.predicted_pairs,
            self.true_pairs,
            self.true_positives
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_of_groups() {
        let groups = [vec![1, 2, 3], vec![4], vec![5, 6]];
        assert_eq!(
            pairs_within(groups.iter().map(Vec::as_slice)),
            [(1, 2), (1, 3), (2, 3), (5, 6)]
        );
    }

    #[test]
    fn counts() {
        let a = Accuracy::measure(
            [("a", "b"), ("d", "c"), ("e", "f")],
            [("b", "a"), ("c", "d"), ("g", "h")],
        );
        assert_eq!(a.true_positives, 2);
        assert!((a.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.recall() - 2.0 / 3.0).abs() < 1e-12);
    }
}
