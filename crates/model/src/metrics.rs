//! How well predicted probabilities match outcomes: AUROC, AUPRC, the Brier score,
//! calibration by decile and the confusion matrix at a threshold. Written here rather than
//! taken from a crate: each is a few lines over sorted scores, and the definitions (ties,
//! the step-wise precision–recall area) are stated where they are computed.

use serde::{Deserialize, Serialize};

/// Every metric carelake reports for a binary model on one set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Rows scored.
    pub rows: usize,
    /// Rows whose outcome is positive.
    pub positives: usize,
    /// Area under the ROC curve (the C-statistic); ties count one half.
    #[serde(with = "crate::nan")]
    pub auroc: f64,
    /// Area under the precision–recall curve, as average precision (step-wise, no
    /// interpolation).
    #[serde(with = "crate::nan")]
    pub auprc: f64,
    /// Mean squared difference between the probability and the outcome (0 is perfect).
    #[serde(with = "crate::nan")]
    pub brier: f64,
    /// Calibration by decile of the predicted probability.
    pub calibration: Vec<CalibrationBin>,
    /// The confusion matrix at `threshold`.
    pub confusion: Confusion,
}

/// One decile of predicted probability: how many rows, their mean prediction and the share
/// that were positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// 1 (lowest predictions) to 10.
    pub decile: usize,
    /// Rows in the decile.
    pub rows: usize,
    /// Mean predicted probability.
    #[serde(with = "crate::nan")]
    pub mean_predicted: f64,
    /// Share of rows with a positive outcome.
    #[serde(with = "crate::nan")]
    pub observed_rate: f64,
}

/// Counts at a threshold: a probability at or above it predicts positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// The threshold.
    pub threshold: f64,
    /// Predicted positive, positive.
    pub true_positive: usize,
    /// Predicted positive, negative.
    pub false_positive: usize,
    /// Predicted negative, negative.
    pub true_negative: usize,
    /// Predicted negative, positive.
    pub false_negative: usize,
}

impl Confusion {
    /// True positives over all positives (NaN without positives).
    pub fn sensitivity(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    /// True negatives over all negatives.
    pub fn specificity(&self) -> f64 {
        ratio(self.true_negative, self.true_negative + self.false_positive)
    }

    /// True positives over predicted positives.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// All metrics of `scores` (probabilities) against `outcomes`, the confusion matrix at
/// `threshold`. Rows with a NaN score are not counted.
pub fn evaluate(scores: &[f64], outcomes: &[bool], threshold: f64) -> Metrics {
    let (scores, outcomes): (Vec<f64>, Vec<bool>) = scores
        .iter()
        .zip(outcomes)
        .filter(|(s, _)| !s.is_nan())
        .map(|(s, o)| (*s, *o))
        .unzip();
    Metrics {
        rows: scores.len(),
        positives: outcomes.iter().filter(|o| **o).count(),
        auroc: auroc(&scores, &outcomes),
        auprc: auprc(&scores, &outcomes),
        brier: brier(&scores, &outcomes),
        calibration: calibration(&scores, &outcomes, 10),
        confusion: confusion(&scores, &outcomes, threshold),
    }
}

/// Indexes of `scores` from the lowest score to the highest.
fn ascending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order
}

/// The probability that a random positive scores above a random negative, ties counting one
/// half (the Mann–Whitney U over positives × negatives). NaN without both classes.
pub fn auroc(scores: &[f64], outcomes: &[bool]) -> f64 {
    let order = ascending(scores);
    let positives = outcomes.iter().filter(|o| **o).count();
    let negatives = outcomes.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    // Sum of the positives' ranks, tied scores sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|&&k| outcomes[k]).count();
        rank_sum += mean_rank * tied_positives as f64;
        i = j + 1;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// Average precision: the precision at each distinct threshold weighted by the recall gained
/// there (scikit-learn's `average_precision_score`). NaN without positives.
pub fn auprc(scores: &[f64], outcomes: &[bool]) -> f64 {
    let mut order = ascending(scores);
    order.reverse();
    let positives = outcomes.iter().filter(|o| **o).count();
    if positives == 0 {
        return f64::NAN;
    }
    let (mut tp, mut fp, mut area, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        // Rows tied at one score enter together.
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            if outcomes[order[j]] {
                tp += 1;
            } else {
                fp += 1;
            }
            j += 1;
        }
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        area += (recall - last_recall) * precision;
        last_recall = recall;
        i = j;
    }
    area
}

/// Mean of (probability − outcome)². NaN for no rows.
pub fn brier(scores: &[f64], outcomes: &[bool]) -> f64 {
    if scores.is_empty() {
        return f64::NAN;
    }
    scores
        .iter()
        .zip(outcomes)
        .map(|(s, o)| (s - f64::from(u8::from(*o))).powi(2))
        .sum::<f64>()
        / scores.len() as f64
}

/// Rows in `bins` groups of (nearly) equal size by ascending prediction.
pub fn calibration(scores: &[f64], outcomes: &[bool], bins: usize) -> Vec<CalibrationBin> {
    let order = ascending(scores);
    let n = order.len();
    (0..bins)
        .filter_map(|b| {
            let (start, end) = (b * n / bins, (b + 1) * n / bins);
            if start == end {
                return None;
            }
            let rows = &order[start..end];
            let count = rows.len() as f64;
            Some(CalibrationBin {
                decile: b + 1,
                rows: rows.len(),
                mean_predicted: rows.iter().map(|&k| scores[k]).sum::<f64>() / count,
                observed_rate: rows.iter().filter(|&&k| outcomes[k]).count() as f64 / count,
            })
        })
        .collect()
}

/// Counts at `threshold`.
pub fn confusion(scores: &[f64], outcomes: &[bool], threshold: f64) -> Confusion {
    let mut c = Confusion {
        threshold,
        true_positive: 0,
        false_positive: 0,
        true_negative: 0,
        false_negative: 0,
    };
    for (s, o) in scores.iter().zip(outcomes) {
        match (*s >= threshold, *o) {
            (true, true) => c.true_positive += 1,
            (true, false) => c.false_positive += 1,
            (false, false) => c.true_negative += 1,
            (false, true) => c.false_negative += 1,
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn auroc_of_a_hand_made_set() {
        // Positives scored 0.9, 0.8, 0.4; negatives 0.7, 0.3, 0.2, 0.1. Of the 12 pairs the
        // positive is higher in all but (0.4, 0.7): AUROC 11/12.
        let scores = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1];
        let outcomes = [true, true, true, false, false, false, false];
        assert!(close(auroc(&scores, &outcomes), 11.0 / 12.0));
        // A tie between a positive and a negative counts one half.
        assert!(close(auroc(&[0.5, 0.5], &[true, false]), 0.5));
        assert!(close(auroc(&[0.6, 0.5, 0.5], &[true, true, false]), 0.75));
        // Perfect and reversed.
        assert!(close(auroc(&[0.9, 0.1], &[true, false]), 1.0));
        assert!(close(auroc(&[0.1, 0.9], &[true, false]), 0.0));
        assert!(auroc(&[0.1, 0.9], &[true, true]).is_nan());
    }

    #[test]
    fn average_precision_steps_at_each_positive() {
        // Ranked: P(0.9) N(0.8) P(0.7) N(0.6): precision at the positives 1 and 2/3, each
        // with recall step 1/2: AP = 0.5 + 1/3.
        let scores = [0.9, 0.8, 0.7, 0.6];
        let outcomes = [true, false, true, false];
        assert!(close(auprc(&scores, &outcomes), 0.5 + 1.0 / 3.0));
        assert!(close(auprc(&[0.9, 0.1], &[true, false]), 1.0));
    }

    #[test]
    fn brier_calibration_and_confusion() {
        assert!(close(
            brier(&[1.0, 0.0, 0.5], &[true, false, true]),
            0.25 / 3.0
        ));
        let scores: Vec<f64> = (0..20).map(|i| i as f64 / 20.0).collect();
        let outcomes: Vec<bool> = (0..20).map(|i| i >= 15).collect();
        let bins = calibration(&scores, &outcomes, 10);
        assert_eq!(bins.len(), 10);
        assert!(bins.iter().all(|b| b.rows == 2));
        assert!(close(bins[0].mean_predicted, 0.025));
        assert!(close(bins[9].observed_rate, 1.0));
        assert!(close(bins[7].observed_rate, 0.5));
        let c = confusion(&scores, &outcomes, 0.5);
        assert_eq!(
            (
                c.true_positive,
                c.false_positive,
                c.true_negative,
                c.false_negative
            ),
            (5, 5, 10, 0)
        );
        assert!(close(c.sensitivity(), 1.0));
        assert!(close(c.specificity(), 2.0 / 3.0));
        assert!(close(c.precision(), 0.5));
    }

    #[test]
    fn nan_scores_are_not_counted() {
        let m = evaluate(&[f64::NAN, 0.9, 0.1], &[false, true, false], 0.5);
        assert_eq!(m.rows, 2);
        assert!(close(m.auroc, 1.0));
    }
}
