//! A trained model: what it reads, how it was fitted, how well it predicts on the rows it
//! never saw, and how to score new rows.

use std::sync::OnceLock;
use std::time::Instant;

use perpetual::PerpetualBooster;
use serde::{Deserialize, Serialize};

use crate::features::{Features, Matrix};
use crate::metrics::{Metrics, evaluate};
use crate::{Error, Result, gbdt, logistic};

/// The kind of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Logistic regression (linfa-logistic).
    Logistic,
    /// Gradient-boosted trees (perpetual).
    Gbdt,
}

impl Kind {
    /// `logistic` or `gbdt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Logistic => "logistic",
            Kind::Gbdt => "gbdt",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "logistic" | "logistic_regression" => Ok(Kind::Logistic),
            "gbdt" | "boosted_trees" => Ok(Kind::Gbdt),
            other => Err(Error::Features(format!(
                "unknown model type {other:?}: logistic or gbdt"
            ))),
        }
    }
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Seed of the split and of the trees' sampling.
    pub seed: u64,
    /// Share of the people (or rows) held out for the metrics.
    pub test_fraction: f64,
    /// Probability at or above which `predict` says true (and the confusion matrix is taken).
    pub threshold: f64,
    /// perpetual's budget (gbdt): more is more complex.
    pub budget: f32,
    /// L2 penalty on the standardised coefficients (logistic).
    pub l2: f64,
    /// L-BFGS iterations at most (logistic).
    pub max_iterations: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 42,
            test_fraction: 0.3,
            threshold: 0.5,
            budget: 0.5,
            l2: 1.0,
            max_iterations: 200,
        }
    }
}

/// One coefficient of a logistic regression, per unit of its feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    /// The feature.
    pub feature: String,
    /// Log-odds per unit.
    #[serde(with = "crate::nan")]
    pub estimate: f64,
    /// Wald standard error (NaN when it cannot be estimated).
    #[serde(with = "crate::nan")]
    pub std_error: f64,
    /// exp(estimate).
    #[serde(with = "crate::nan")]
    pub odds_ratio: f64,
    /// 95% confidence interval of the odds ratio: exp(estimate ± 1.96 · std_error).
    #[serde(with = "crate::nan")]
    pub ci_low: f64,
    /// Upper end of the interval.
    #[serde(with = "crate::nan")]
    pub ci_high: f64,
}

/// What was fitted.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Params {
    /// A logistic regression.
    Logistic {
        /// Log-odds at all features zero.
        #[serde(with = "crate::nan")]
        intercept: f64,
        /// Per feature, in matrix order.
        coefficients: Vec<Coefficient>,
        /// Training means, the reference point of the contributions.
        #[serde(with = "crate::nan::vec")]
        means: Vec<f64>,
    },
    /// Boosted trees, as perpetual writes them.
    Gbdt {
        /// perpetual's JSON.
        booster: String,
        /// The booster read from it, once.
        #[serde(skip)]
        loaded: Box<OnceLock<PerpetualBooster>>,
    },
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Params::Logistic {
                intercept,
                coefficients,
                ..
            } => f
                .debug_struct("Logistic")
                .field("intercept", intercept)
                .field("coefficients", &coefficients.len())
                .finish(),
            Params::Gbdt { booster, .. } => f
                .debug_struct("Gbdt")
                .field("booster_bytes", &booster.len())
                .finish(),
        }
    }
}

/// How the model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Rows trained on.
    pub train_rows: usize,
    /// Rows held out.
    pub test_rows: usize,
    /// Distinct split keys (people) on each side.
    pub train_groups: usize,
    /// Distinct split keys held out.
    pub test_groups: usize,
    /// The column the split was by (`None`: by row).
    pub split_by: Option<String>,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
    /// The settings.
    pub options: Options,
}

/// A trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    /// The kind.
    pub kind: Kind,
    /// The target column.
    pub target: String,
    /// The input columns and their encodings.
    pub features: Features,
    /// The fitted parameters.
    pub params: Params,
    /// Each feature's importance (logistic: |coefficient| × standard deviation; gbdt: share of
    /// the total split gain), in matrix order.
    #[serde(with = "crate::nan::vec")]
    pub importance: Vec<f64>,
    /// Metrics on the held-out rows.
    pub test: Metrics,
    /// Metrics on the training rows.
    pub train: Metrics,
    /// How it was trained.
    pub summary: TrainingSummary,
}

/// Which rows are held out.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Per row: held out for the metrics.
    pub is_test: Vec<bool>,
    /// Distinct split keys trained on.
    pub train_groups: usize,
    /// Distinct split keys held out.
    pub test_groups: usize,
    /// The column the split was by (`None`: by row).
    pub by: Option<String>,
}

impl Split {
    /// A split by row, for tests and data without people.
    pub fn by_row(rows: usize, seed: u64, test_fraction: f64) -> Split {
        let is_test: Vec<bool> = (0..rows)
            .map(|i| crate::split::in_test(seed, &(i as u64).to_le_bytes(), test_fraction))
            .collect();
        let test_groups = is_test.iter().filter(|t| **t).count();
        Split {
            train_groups: rows - test_groups,
            test_groups,
            is_test,
            by: None,
        }
    }
}

/// Trains on the rows the split does not hold out and evaluates on the others. `x` has NaN
/// for missing values.
pub fn train(
    kind: Kind,
    target: &str,
    features: Features,
    x: &Matrix,
    y: &[bool],
    split: &Split,
    options: Options,
) -> Result<Model> {
    let is_test = &split.is_test;
    let train_rows: Vec<usize> = (0..x.rows).filter(|&i| !is_test[i]).collect();
    let test_rows: Vec<usize> = (0..x.rows).filter(|&i| is_test[i]).collect();
    if train_rows.is_empty() || test_rows.is_empty() {
        return Err(Error::Training(format!(
            "{} training rows and {} held out: both sides need rows (more data, or another test_fraction)",
            train_rows.len(),
            test_rows.len()
        )));
    }
    let y_train: Vec<bool> = train_rows.iter().map(|&i| y[i]).collect();
    let y_test: Vec<bool> = test_rows.iter().map(|&i| y[i]).collect();
    let x_train = x.select(&train_rows);
    let x_test = x.select(&test_rows);
    let names = features.names();
    let started = Instant::now();
    let (params, importance) = match kind {
        Kind::Logistic => {
            let mut filled = x_train.clone();
            filled.fill_missing(&features.fills());
            let fit = logistic::fit(&filled, &y_train, options.l2, options.max_iterations)?;
            let coefficients = names
                .iter()
                .enumerate()
                .map(|(j, name)| {
                    let (b, se) = (fit.coefficients[j], fit.std_errors[j]);
                    Coefficient {
                        feature: name.clone(),
                        estimate: b,
                        std_error: se,
                        odds_ratio: b.exp(),
                        ci_low: (b - 1.96 * se).exp(),
                        ci_high: (b + 1.96 * se).exp(),
                    }
                })
                .collect();
            let importance = (0..names.len())
                .map(|j| (fit.coefficients[j] * fit.sds[j]).abs())
                .collect();
            (
                Params::Logistic {
                    intercept: fit.intercept,
                    coefficients,
                    means: fit.means,
                },
                importance,
            )
        }
        Kind::Gbdt => {
            let booster = gbdt::fit(&x_train, &y_train, options.budget, options.seed)?;
            let importance = gbdt::importance(&booster, names.len());
            let json = gbdt::to_json(&booster)?;
            let loaded = Box::new(OnceLock::new());
            let _ = loaded.set(booster);
            (
                Params::Gbdt {
                    booster: json,
                    loaded,
                },
                importance,
            )
        }
    };
    let fit_seconds = started.elapsed().as_secs_f64();
    let mut model = Model {
        kind,
        target: target.to_string(),
        features,
        params,
        importance,
        test: evaluate(&[], &[], options.threshold),
        train: evaluate(&[], &[], options.threshold),
        summary: TrainingSummary {
            train_rows: train_rows.len(),
            test_rows: test_rows.len(),
            train_groups: split.train_groups,
            test_groups: split.test_groups,
            split_by: split.by.clone(),
            fit_seconds,
            options,
        },
    };
    let threshold = model.summary.options.threshold;
    model.train = evaluate(&model.predict_proba(&x_train)?, &y_train, threshold);
    model.test = evaluate(&model.predict_proba(&x_test)?, &y_test, threshold);
    Ok(model)
}

impl Model {
    /// The model as JSON, to store.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Unreadable(e.to_string()))
    }

    /// A stored model.
    pub fn from_json(json: &str) -> Result<Model> {
        serde_json::from_str(json).map_err(|e| Error::Unreadable(e.to_string()))
    }

    fn booster(&self) -> Result<Option<&PerpetualBooster>> {
        match &self.params {
            Params::Gbdt { booster, loaded } => {
                if loaded.get().is_none() {
                    let _ = loaded.set(gbdt::from_json(booster)?);
                }
                Ok(loaded.get())
            }
            Params::Logistic { .. } => Ok(None),
        }
    }

    /// The probability of a positive target for each row of `x` (encoded by
    /// [`Features::encode`], missing values NaN).
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<f64>> {
        self.check_width(x)?;
        match &self.params {
            Params::Logistic {
                intercept,
                coefficients,
                ..
            } => {
                let mut filled = x.clone();
                filled.fill_missing(&self.features.fills());
                Ok((0..x.rows)
                    .map(|i| {
                        let eta = coefficients
                            .iter()
                            .enumerate()
                            .fold(*intercept, |acc, (j, c)| {
                                acc + c.estimate * filled.get(i, j)
                            });
                        logistic::sigmoid(eta)
                    })
                    .collect())
            }
            Params::Gbdt { .. } => {
                let booster = self.booster()?.expect("a gbdt model has a booster");
                Ok(gbdt::probabilities(booster, x))
            }
        }
    }

    /// Each feature's contribution to each row's log-odds, then the bias (the log-odds of a
    /// row at the reference): SHAP values for gbdt; for logistic, coefficient × (value −
    /// training mean), which are the SHAP values of a linear model.
    pub fn contributions(&self, x: &Matrix) -> Result<Vec<Vec<f64>>> {
        self.check_width(x)?;
        match &self.params {
            Params::Logistic {
                intercept,
                coefficients,
                means,
            } => {
                let mut filled = x.clone();
                filled.fill_missing(&self.features.fills());
                let bias = coefficients
                    .iter()
                    .zip(means)
                    .fold(*intercept, |acc, (c, m)| acc + c.estimate * m);
                Ok((0..x.rows)
                    .map(|i| {
                        let mut row: Vec<f64> = coefficients
                            .iter()
                            .zip(means)
                            .enumerate()
                            .map(|(j, (c, m))| c.estimate * (filled.get(i, j) - m))
                            .collect();
                        row.push(bias);
                        row
                    })
                    .collect())
            }
            Params::Gbdt { .. } => {
                let booster = self.booster()?.expect("a gbdt model has a booster");
                Ok(gbdt::contributions(booster, x))
            }
        }
    }

    fn check_width(&self, x: &Matrix) -> Result<()> {
        let width = self.features.names().len();
        if x.cols == width {
            Ok(())
        } else {
            Err(Error::Features(format!(
                "the model has {width} features, the rows {}",
                x.cols
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array};

    use super::*;

    /// y depends on x1 (strongly) and not on x2, with noise from a fixed sequence.
    fn data(n: usize) -> (Features, Matrix, Vec<bool>) {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let x1: Vec<f64> = (0..n).map(|_| next() * 4.0 - 2.0).collect();
        let x2: Vec<f64> = (0..n).map(|_| next()).collect();
        let y: Vec<bool> = x1
            .iter()
            .map(|v| next() < logistic::sigmoid(1.5 * v - 0.5))
            .collect();
        let columns: Vec<(String, ArrayRef)> = vec![
            ("x1".into(), Arc::new(Float64Array::from(x1))),
            ("x2".into(), Arc::new(Float64Array::from(x2))),
        ];
        let features = Features::learn(&columns).unwrap();
        let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, a)| a).collect();
        let x = features.encode(&arrays).unwrap();
        (features, x, y)
    }

    #[test]
    fn logistic_recovers_the_coefficient_and_round_trips() {
        let (features, x, y) = data(4000);
        let split = Split::by_row(x.rows, 1, 0.3);
        let model = train(
            Kind::Logistic,
            "y",
            features,
            &x,
            &y,
            &split,
            Options::default(),
        )
        .unwrap();
        let Params::Logistic { coefficients, .. } = &model.params else {
            panic!()
        };
        assert!(
            (coefficients[0].estimate - 1.5).abs() < 0.2,
            "{coefficients:?}"
        );
        assert!(coefficients[0].ci_low < 1.5f64.exp() && coefficients[0].ci_high > 1.5f64.exp());
        assert!(coefficients[1].ci_low < 1.0 && coefficients[1].ci_high > 1.0);
        assert!(model.test.auroc > 0.75, "{}", model.test.auroc);
        let again = Model::from_json(&model.to_json().unwrap()).unwrap();
        assert_eq!(
            again.predict_proba(&x).unwrap(),
            model.predict_proba(&x).unwrap()
        );
        // Contributions add up to the log-odds.
        let c = model.contributions(&x).unwrap();
        let p = model.predict_proba(&x).unwrap();
        for (row, p) in c.iter().zip(&p).take(20) {
            assert!((logistic::sigmoid(row.iter().sum()) - p).abs() < 1e-9);
        }
    }

    #[test]
    fn gbdt_learns_is_deterministic_and_round_trips() {
        let (features, x, y) = data(3000);
        let split = Split::by_row(x.rows, 1, 0.3);
        let fit = || {
            train(
                Kind::Gbdt,
                "y",
                features.clone(),
                &x,
                &y,
                &split,
                Options::default(),
            )
            .unwrap()
        };
        let model = fit();
        assert!(model.test.auroc > 0.7, "{}", model.test.auroc);
        assert!(
            model.importance[0] > model.importance[1],
            "{:?}",
            model.importance
        );
        let p = model.predict_proba(&x).unwrap();
        assert_eq!(fit().predict_proba(&x).unwrap(), p);
        let again = Model::from_json(&model.to_json().unwrap()).unwrap();
        assert_eq!(again.predict_proba(&x).unwrap(), p);
        let c = again.contributions(&x).unwrap();
        assert_eq!(c[0].len(), 3);
        for (row, p) in c.iter().zip(&p).take(20) {
            assert!(
                (logistic::sigmoid(row.iter().sum()) - p).abs() < 0.01,
                "{row:?} {p}"
            );
        }
    }
}
