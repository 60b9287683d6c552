//! Gradient-boosted trees with `perpetual` (log loss), whose one setting is its budget.

use perpetual::booster::config::{BoosterIO, ImportanceMethod};
use perpetual::objective::Objective;
use perpetual::{ContributionsMethod, PerpetualBooster};

use crate::features::Matrix;
use crate::{Error, Result};

fn matrix(x: &Matrix) -> perpetual::Matrix<'_, f64> {
    // Both are column-major.
    perpetual::Matrix::new(&x.data, x.rows, x.cols)
}

/// Fits `y` on `x` (missing values NaN); the booster as JSON.
pub(crate) fn fit(x: &Matrix, y: &[bool], budget: f32, seed: u64) -> Result<PerpetualBooster> {
    let mut booster = PerpetualBooster::default()
        .set_objective(Objective::LogLoss)
        .set_budget(budget)
        .set_seed(seed)
        .set_log_iterations(0);
    // Probabilities as observed: no reweighting of the rarer class.
    booster.cfg.auto_class_weights = false;
    let y: Vec<f64> = y.iter().map(|v| f64::from(u8::from(*v))).collect();
    booster
        .fit(&matrix(x), &y, None, None)
        .map_err(|e| Error::Training(e.to_string()))?;
    Ok(booster)
}

pub(crate) fn to_json(booster: &PerpetualBooster) -> Result<String> {
    booster
        .json_dump()
        .map_err(|e| Error::Training(e.to_string()))
}

pub(crate) fn from_json(json: &str) -> Result<PerpetualBooster> {
    PerpetualBooster::from_json(json).map_err(|e| Error::Unreadable(e.to_string()))
}

pub(crate) fn probabilities(booster: &PerpetualBooster, x: &Matrix) -> Vec<f64> {
    booster.predict_proba(&matrix(x), false, false)
}

/// SHAP values on the log-odds scale: per row, one per feature then the bias.
pub(crate) fn contributions(booster: &PerpetualBooster, x: &Matrix) -> Vec<Vec<f64>> {
    let flat = booster.predict_contributions(&matrix(x), ContributionsMethod::Shapley, false);
    flat.chunks(x.cols + 1).map(<[f64]>::to_vec).collect()
}

/// Each feature's share of the total split gain (0 for a feature never split on).
pub(crate) fn importance(booster: &PerpetualBooster, features: usize) -> Vec<f64> {
    let gain = booster.calculate_feature_importance(ImportanceMethod::TotalGain, true);
    (0..features)
        .map(|j| gain.get(&j).map_or(0.0, |g| f64::from(*g)))
        .collect()
}
