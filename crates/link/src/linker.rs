//! The whole linkage: candidates by blocking, comparison vectors, u from the data, m by EM,
//! then every candidate scored and kept when it reaches the review band.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::block::{BlockingRule, BlockingStats, LinkMode, default_rules, for_each_candidate};
use crate::compare::{Comparison, default_comparisons};
use crate::error::{Error, Result};
use crate::model::{
    ComparisonParams, LEVEL_BITS, LevelParams, Model, TrainingSession, estimate_u,
    expectation_maximisation, initial_m, level_of, total_pairs,
};
use crate::records::RecordSet;

/// The least m of any level.
const M_FLOOR: f64 = 1e-3;

/// How to link.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Dedupe all records, or link one source to the other.
    pub mode: LinkMode,
    /// Blocking rules; rules whose fields the records lack are skipped.
    pub rules: Vec<BlockingRule>,
    /// Pairs at or above this match probability are linked.
    pub match_threshold: f64,
    /// Pairs at or above this probability but below the match threshold go to review.
    pub review_threshold: f64,
    /// Blocks with more records than this are skipped (and counted): a value shared by that
    /// many records is not evidence of identity.
    pub max_block_size: usize,
    /// Random pairs drawn to estimate u.
    pub u_sample_pairs: usize,
    /// EM iteration limit.
    pub max_em_iterations: usize,
    /// Seed of the random pair sample: the same input and seed give the same result.
    pub seed: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            mode: LinkMode::Dedupe,
            rules: default_rules(),
            match_threshold: 0.9,
            review_threshold: 0.5,
            max_block_size: 5_000,
            u_sample_pairs: 300_000,
            max_em_iterations: 200,
            seed: 42,
        }
    }
}

/// A compared pair with its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    /// The record with the lower position.
    pub a: u32,
    /// The other record.
    pub b: u32,
    /// Match weight in bits (prior included).
    pub weight: f64,
    /// Match probability.
    pub probability: f64,
    levels: u64,
}

impl ScoredPair {
    /// The agreement level of comparison `k` (0 missing, 1 exact, …).
    pub fn level(&self, k: usize) -> u8 {
        level_of(self.levels, k)
    }
}

/// Time spent in each step.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Estimating u (value frequencies and the random pair sample).
    pub estimate_u: Duration,
    /// Blocking and comparing candidates.
    pub compare: Duration,
    /// EM.
    pub train: Duration,
    /// Scoring candidates.
    pub score: Duration,
}

/// The result of [`link`].
#[derive(Debug, Clone)]
pub struct Linkage {
    /// The comparisons, in model order.
    pub comparisons: Vec<Comparison>,
    /// The trained model.
    pub model: Model,
    /// Pairs at or above the review threshold, by descending probability.
    pub pairs: Vec<ScoredPair>,
    /// Candidate pairs compared.
    pub candidates: u64,
    /// What blocking produced.
    pub blocking: BlockingStats,
    /// Time per step.
    pub timings: Timings,
    /// The thresholds used.
    pub match_threshold: f64,
    /// The review threshold used.
    pub review_threshold: f64,
}

impl Linkage {
    /// Pairs at or above the match threshold.
    pub fn links(&self) -> impl Iterator<Item = &ScoredPair> {
        self.pairs
            .iter()
            .filter(|p| p.probability >= self.match_threshold)
    }

    /// Pairs in the review band.
    pub fn reviews(&self) -> impl Iterator<Item = &ScoredPair> {
        self.pairs
            .iter()
            .filter(|p| p.probability < self.match_threshold)
    }
}

/// Links `records`: finds the pairs that are the same person.
pub fn link(records: &RecordSet, config: &LinkConfig) -> Result<Linkage> {
    if !(0.0..=1.0).contains(&config.match_threshold)
        || !(0.0..=config.match_threshold).contains(&config.review_threshold)
    {
        return Err(Error::Config(
            "thresholds must satisfy 0 <= review <= match <= 1".into(),
        ));
    }
    if config.mode == LinkMode::Link && records.sources().len() != 2 {
        return Err(Error::LinkSources(records.sources().len()));
    }
    let comparisons = default_comparisons(records);
    if comparisons.is_empty() || comparisons.len() > (64 / LEVEL_BITS) as usize {
        return Err(Error::NoComparableFields);
    }
    let mut timings = Timings::default();

    let started = Instant::now();
    let (u, tf, u_samples) = estimate_u(
        records,
        &comparisons,
        config.mode,
        config.u_sample_pairs,
        config.seed,
    );
    timings.estimate_u = started.elapsed();

    let started = Instant::now();
    let rules: Vec<&BlockingRule> = config
        .rules
        .iter()
        .filter(|r| r.applies_to(records))
        .take(32)
        .collect();
    let (candidates, blocking) = for_each_candidate(
        records,
        &rules,
        config.mode,
        config.max_block_size,
        |a, b, mask| {
            let mut levels = 0u64;
            for (k, c) in comparisons.iter().enumerate() {
                levels |=
                    u64::from(c.level(records, a as usize, b as usize)) << (k as u32 * LEVEL_BITS);
            }
            Some((a, b, levels, mask))
        },
    );
    timings.compare = started.elapsed();

    // m by EM, one session per blocking rule over the pairs agreeing on it, with the rule's
    // fields left out; each comparison's m is the average over the sessions that estimated it,
    // weighted by the matches each session found.
    let started = Instant::now();
    let mut sums: Vec<Vec<f64>> = comparisons
        .iter()
        .map(|c| vec![0.0; c.level_count()])
        .collect();
    let mut weight_sums = vec![0.0; comparisons.len()];
    let mut sessions = Vec::new();
    let mut em_iterations = 0;
    let mut converged = true;
    for (r, rule) in rules.iter().enumerate() {
        let blocked: Vec<crate::field::Field> = rule.fields().collect();
        let active: Vec<bool> = comparisons
            .iter()
            .map(|c| !c.fields().iter().any(|f| blocked.contains(f)))
            .collect();
        if !active.iter().any(|a| *a) {
            continue;
        }
        let mut counts: HashMap<u64, u64> = HashMap::new();
        let mut pairs = 0u64;
        for (_, _, levels, mask) in &candidates {
            if mask & (1 << r) != 0 {
                *counts.entry(*levels).or_default() += 1;
                pairs += 1;
            }
        }
        if pairs == 0 {
            continue;
        }
        let patterns: Vec<(u64, u64)> = counts.into_iter().collect();
        let result = expectation_maximisation(
            &patterns,
            &active,
            initial_m(&comparisons),
            &u,
            true,
            config.max_em_iterations,
        );
        em_iterations += result.iterations;
        converged &= result.converged;
        let matches = result.match_share * pairs as f64;
        for (k, on) in active.iter().enumerate() {
            if *on {
                for (sum, m) in sums[k].iter_mut().zip(&result.m[k]) {
                    *sum += m * matches;
                }
                weight_sums[k] += matches;
            }
        }
        sessions.push(TrainingSession {
            rule: rule.to_string(),
            pairs,
            match_share: result.match_share,
            iterations: result.iterations,
            converged: result.converged,
        });
    }
    let start = initial_m(&comparisons);
    let m: Vec<Vec<f64>> = sums
        .iter()
        .zip(&weight_sums)
        .zip(start)
        .map(|((sum, weight), start)| {
            if *weight > 0.0 {
                // No level is impossible for a match: a data-entry slip in one field must not
                // veto everything else.
                let mut m: Vec<f64> = sum.iter().map(|s| (s / weight).max(M_FLOOR)).collect();
                let total: f64 = m[1..].iter().sum();
                for v in &mut m[1..] {
                    *v /= total;
                }
                m
            } else {
                start
            }
        })
        .collect();
    // The share of matches among all candidates, m and u fixed.
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for (_, _, levels, _) in &candidates {
        *counts.entry(*levels).or_default() += 1;
    }
    let patterns: Vec<(u64, u64)> = counts.into_iter().collect();
    let all_active = vec![true; comparisons.len()];
    let overall = expectation_maximisation(
        &patterns,
        &all_active,
        m,
        &u,
        false,
        config.max_em_iterations,
    );
    em_iterations += overall.iterations;
    converged &= overall.converged;
    let (m, share) = (overall.m, overall.match_share);
    timings.train = started.elapsed();

    let all_pairs = total_pairs(records, config.mode).max(1) as f64;
    let prior = (share * candidates.len() as f64 / all_pairs).clamp(1e-12, 0.5);
    let model = Model {
        comparisons: comparisons
            .iter()
            .enumerate()
            .map(|(k, c)| ComparisonParams {
                name: c.name(),
                levels: (1..c.level_count())
                    .map(|l| LevelParams {
                        label: c.level_labels()[l],
                        m: m[k][l],
                        u: u[k][l],
                    })
                    .collect(),
                term_frequency: c.term_frequency,
            })
            .collect(),
        prior,
        candidate_match_share: share,
        em_iterations,
        converged,
        u_sample_pairs: u_samples,
        sessions,
    };

    let started = Instant::now();
    let weights: Vec<Vec<f64>> = (0..comparisons.len())
        .map(|k| {
            (0..m[k].len())
                .map(|l| {
                    if l == 0 {
                        0.0
                    } else {
                        (m[k][l] / u[k][l]).log2()
                    }
                })
                .collect()
        })
        .collect();
    let prior_weight = (prior / (1.0 - prior)).log2();
    let floor = 1.0 / records.len().max(1) as f64;
    let mut pairs: Vec<ScoredPair> = candidates
        .par_iter()
        .filter_map(|&(a, b, levels, _)| {
            let mut weight = prior_weight;
            for k in 0..comparisons.len() {
                let l = level_of(levels, k) as usize;
                weight += weights[k][l];
                if l == 1
                    && let Some(share_a) = tf.get(k, a)
                {
                    // Exact agreement on a rare value says more than on a common one.
                    let share = share_a.max(tf.get(k, b).unwrap_or(0.0)).max(floor);
                    weight += (u[k][1] / share).log2();
                }
            }
            let probability = 1.0 / (1.0 + (-weight).exp2());
            (probability >= config.review_threshold).then_some(ScoredPair {
                a,
                b,
                weight,
                probability,
                levels,
            })
        })
        .collect();
    pairs.sort_by(|x, y| {
        y.probability
            .total_cmp(&x.probability)
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    timings.score = started.elapsed();

    Ok(Linkage {
        comparisons,
        model,
        pairs,
        candidates: candidates.len() as u64,
        blocking,
        timings,
        match_threshold: config.match_threshold,
        review_threshold: config.review_threshold,
    })
}
