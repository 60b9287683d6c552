//! The Fellegi–Sunter model: for every comparison level, m (how often true matches show it)
//! and u (how often non-matches do). u comes from the data directly (value frequencies for
//! exact agreement, random record pairs for the other levels); m and the share of matches
//! among the candidate pairs are estimated by expectation–maximisation, with u held fixed.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::block::LinkMode;
use crate::compare::Comparison;
use crate::records::RecordSet;

/// Weight, in record pairs, of the typical u of each level against what the data shows: large
/// files speak for themselves, a file of a few hundred records leans on the typical values.
const PRIOR_PAIRS: f64 = 10_000.0;

/// Bits per comparison level in a packed comparison vector.
pub(crate) const LEVEL_BITS: u32 = 4;

pub(crate) fn level_of(levels: u64, k: usize) -> u8 {
    ((levels >> (k as u32 * LEVEL_BITS)) & 0xF) as u8
}

/// m and u of one level.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelParams {
    /// What the level means.
    pub label: &'static str,
    /// P(level | match).
    pub m: f64,
    /// P(level | non-match).
    pub u: f64,
}

impl LevelParams {
    /// The evidence in bits: log2(m / u).
    pub fn weight(&self) -> f64 {
        (self.m / self.u).log2()
    }
}

/// The parameters of one comparison; level 0 (missing) carries no weight and is left out.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonParams {
    /// The compared field.
    pub name: &'static str,
    /// Levels 1.. (exact first, disagreement last).
    pub levels: Vec<LevelParams>,
    /// Whether exact agreement is weighted by the value's frequency.
    pub term_frequency: bool,
}

/// A trained model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Per comparison, its levels' m and u.
    pub comparisons: Vec<ComparisonParams>,
    /// Probability that two records drawn at random are the same person.
    pub prior: f64,
    /// Share of the candidate pairs that are matches, as estimated.
    pub candidate_match_share: f64,
    /// EM iterations run.
    pub em_iterations: usize,
    /// Whether EM converged before its iteration limit.
    pub converged: bool,
    /// Random pairs drawn to estimate u.
    pub u_sample_pairs: usize,
    /// The EM training sessions, one per blocking rule.
    pub sessions: Vec<TrainingSession>,
}

/// One EM run over the pairs of one blocking rule, the rule's own fields left out (pairs
/// chosen for agreeing on a field say nothing about how matches agree on it).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSession {
    /// The blocking rule.
    pub rule: String,
    /// Pairs it trained on.
    pub pairs: u64,
    /// Share of them estimated to be matches.
    pub match_share: f64,
    /// EM iterations.
    pub iterations: usize,
    /// Whether EM converged.
    pub converged: bool,
}

/// Frequencies of exact values of the term-frequency comparisons, per record.
#[derive(Debug)]
pub(crate) struct TermFrequencies {
    /// For comparison k (None when it has no term frequencies), each record's value share.
    per_record: Vec<Option<Vec<f32>>>,
}

impl TermFrequencies {
    pub(crate) fn get(&self, k: usize, record: u32) -> Option<f64> {
        self.per_record[k]
            .as_ref()
            .map(|v| f64::from(v[record as usize]))
    }
}

/// Per comparison: u of exact agreement from value frequencies, and (when the comparison has
/// them) each record's value share.
fn value_frequencies(
    records: &RecordSet,
    comparisons: &[Comparison],
    mode: LinkMode,
) -> (Vec<f64>, TermFrequencies) {
    let n = records.len();
    let results: Vec<(f64, Option<Vec<f32>>)> = comparisons
        .par_iter()
        .map(|c| {
            // counts[value] = per source-side count (side 0 / side 1 in link mode).
            let mut counts: HashMap<std::borrow::Cow<'_, str>, [u64; 2]> = HashMap::new();
            let mut totals = [0u64; 2];
            for i in 0..n {
                let v = c.exact_key(records, i);
                if v.is_empty() {
                    continue;
                }
                let side = if mode == LinkMode::Link {
                    records.source_of(i).min(1)
                } else {
                    0
                };
                counts.entry(v).or_default()[side] += 1;
                totals[side] += 1;
            }
            // Pairs agreeing exactly, of all pairs with a value on both sides; shrunk towards
            // the field's typical share so that a small file (where the few true duplicates
            // are a large share of all pairs) does not make agreement look common.
            let (same, pairs) = match mode {
                LinkMode::Dedupe => {
                    let t = totals[0] as f64;
                    let same: f64 = counts
                        .values()
                        .map(|c| c[0] as f64 * (c[0] as f64 - 1.0))
                        .sum();
                    (same, t * (t - 1.0).max(0.0))
                }
                LinkMode::Link => {
                    let same: f64 = counts.values().map(|c| c[0] as f64 * c[1] as f64).sum();
                    (same, totals[0] as f64 * totals[1] as f64)
                }
            };
            let u_exact = (same + PRIOR_PAIRS * c.prior_u()[0]) / (pairs + PRIOR_PAIRS);
            let tf = c.term_frequency.then(|| {
                let all = (totals[0] + totals[1]).max(1) as f64;
                (0..n)
                    .map(|i| {
                        let v = c.exact_key(records, i);
                        counts
                            .get(&v)
                            .map_or(0.0, |c| ((c[0] + c[1]) as f64 / all) as f32)
                    })
                    .collect()
            });
            (u_exact, tf)
        })
        .collect();
    let (u, per_record) = results.into_iter().unzip();
    (u, TermFrequencies { per_record })
}

/// u for every level: exact agreement from value frequencies, the rest from random pairs.
pub(crate) fn estimate_u(
    records: &RecordSet,
    comparisons: &[Comparison],
    mode: LinkMode,
    sample_pairs: usize,
    seed: u64,
) -> (Vec<Vec<f64>>, TermFrequencies, usize) {
    let (u_exact, tf) = value_frequencies(records, comparisons, mode);
    let n = records.len();
    let sides: [Vec<u32>; 2] = if mode == LinkMode::Link {
        let mut sides = [Vec::new(), Vec::new()];
        for i in 0..n {
            sides[records.source_of(i).min(1)].push(i as u32);
        }
        sides
    } else {
        [Vec::new(), Vec::new()]
    };
    let total_pairs = total_pairs(records, mode);
    let samples = (sample_pairs as u128).min(total_pairs) as usize;
    let chunk = 65_536;
    let counts: Vec<u64> = (0..samples.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (c as u64).wrapping_mul(0x9E37_79B9));
            let mut counts: Vec<Vec<u64>> = comparisons
                .iter()
                .map(|c| vec![0u64; c.level_count()])
                .collect();
            let this = chunk.min(samples - c * chunk);
            for _ in 0..this {
                let (a, b) = match mode {
                    LinkMode::Link => (
                        sides[0][rng.random_range(0..sides[0].len())],
                        sides[1][rng.random_range(0..sides[1].len())],
                    ),
                    LinkMode::Dedupe => {
                        let a = rng.random_range(0..n as u32);
                        let mut b = rng.random_range(0..n as u32 - 1);
                        if b >= a {
                            b += 1;
                        }
                        (a, b)
                    }
                };
                for (k, comparison) in comparisons.iter().enumerate() {
                    counts[k][comparison.level(records, a as usize, b as usize) as usize] += 1;
                }
            }
            counts.into_iter().flatten().collect::<Vec<u64>>()
        })
        .reduce(Vec::new, |a, b| {
            if a.is_empty() {
                return b;
            }
            if b.is_empty() {
                return a;
            }
            a.iter().zip(&b).map(|(x, y)| x + y).collect()
        });
    let mut offset = 0;
    let u = comparisons
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let levels = c.level_count();
            let sampled = if counts.is_empty() {
                vec![0; levels]
            } else {
                counts[offset..offset + levels].to_vec()
            };
            offset += levels;
            let present: u64 = sampled[1..].iter().sum();
            let prior = c.prior_u();
            let exact = u_exact[k];
            let mut u = vec![1.0; levels];
            u[1] = exact;
            // Partial levels: sample counts shrunk towards the typical shares.
            for l in 2..levels - 1 {
                u[l] = (sampled[l] as f64 + PRIOR_PAIRS * prior[l - 1])
                    / (present as f64 + PRIOR_PAIRS);
            }
            let partial: f64 = u[2..levels - 1].iter().sum();
            u[levels - 1] = (1.0 - exact - partial).max(1e-6);
            let total: f64 = u[1..].iter().sum();
            for v in &mut u[1..] {
                *v /= total;
            }
            u
        })
        .collect();
    (u, tf, samples)
}

/// Pairs that could be compared at all.
pub(crate) fn total_pairs(records: &RecordSet, mode: LinkMode) -> u128 {
    let n = records.len() as u128;
    match mode {
        LinkMode::Dedupe => n * n.saturating_sub(1) / 2,
        LinkMode::Link => {
            let a = (0..records.len())
                .filter(|&i| records.source_of(i) == 0)
                .count() as u128;
            a * (n - a)
        }
    }
}

/// Starting m: most matches agree exactly, a few agree partly, very few disagree.
pub(crate) fn initial_m(comparisons: &[Comparison]) -> Vec<Vec<f64>> {
    comparisons
        .iter()
        .map(|c| {
            let levels = c.level_count();
            let mut m = vec![1.0; levels];
            let agreeing = levels - 2;
            m[1] = 0.9;
            m[levels - 1] = 0.02;
            if agreeing > 1 {
                for level in m.iter_mut().take(levels - 1).skip(2) {
                    *level = 0.08 / (agreeing - 1) as f64;
                }
            } else {
                m[1] = 0.98;
            }
            m
        })
        .collect()
}

/// What one EM run found.
#[derive(Debug, Clone)]
pub(crate) struct EmResult {
    pub(crate) m: Vec<Vec<f64>>,
    pub(crate) match_share: f64,
    pub(crate) iterations: usize,
    pub(crate) converged: bool,
}

/// EM over distinct comparison vectors (with their counts), u fixed. Comparisons not `active`
/// take no part (the fields a training session was blocked on); with `fit_m` false only the
/// match share is estimated.
pub(crate) fn expectation_maximisation(
    patterns: &[(u64, u64)],
    active: &[bool],
    start_m: Vec<Vec<f64>>,
    u: &[Vec<f64>],
    fit_m: bool,
    max_iterations: usize,
) -> EmResult {
    let mut m = start_m;
    let mut lambda: f64 = 0.1;
    let total: f64 = patterns.iter().map(|(_, c)| *c as f64).sum();
    if total == 0.0 {
        return EmResult {
            m,
            match_share: 0.0,
            iterations: 0,
            converged: true,
        };
    }
    for iteration in 1..=max_iterations {
        let mut weighted: Vec<Vec<f64>> = m.iter().map(|l| vec![0.0; l.len()]).collect();
        let mut matches = 0.0;
        for &(levels, count) in patterns {
            // log-likelihood ratio in natural units, for numerical range.
            let mut llr = (lambda / (1.0 - lambda)).ln();
            for (k, on) in active.iter().enumerate() {
                let l = level_of(levels, k) as usize;
                if *on && l > 0 {
                    llr += (m[k][l] / u[k][l]).ln();
                }
            }
            let p = 1.0 / (1.0 + (-llr).exp());
            let w = p * count as f64;
            matches += w;
            for (k, weights) in weighted.iter_mut().enumerate() {
                let l = level_of(levels, k) as usize;
                if l > 0 {
                    weights[l] += w;
                }
            }
        }
        let new_lambda = (matches / total).clamp(1e-9, 1.0 - 1e-9);
        let mut change = (new_lambda - lambda).abs();
        for (k, weights) in weighted.iter().enumerate() {
            let sum: f64 = weights[1..].iter().sum();
            if !fit_m || !active[k] || sum <= 0.0 {
                continue;
            }
            for l in 1..weights.len() {
                let new_m = (weights[l] / sum).max(1e-6);
                change = change.max((new_m - m[k][l]).abs());
                m[k][l] = new_m;
            }
        }
        lambda = new_lambda;
        if change < 1e-6 {
            return EmResult {
                m,
                match_share: lambda,
                iterations: iteration,
                converged: true,
            };
        }
    }
    EmResult {
        m,
        match_share: lambda,
        iterations: max_iterations,
        converged: false,
    }
}
