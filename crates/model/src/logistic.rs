//! Logistic regression with `linfa-logistic` (L-BFGS, L2 penalty), fitted on standardised
//! features and returned on the features' own scale, with Wald standard errors from the
//! inverse of the Fisher information at the fitted coefficients.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ShapeBuilder};

use crate::features::Matrix;
use crate::{Error, Result};

/// A fitted logistic regression on the features' scale.
pub(crate) struct Fitted {
    pub(crate) intercept: f64,
    pub(crate) coefficients: Vec<f64>,
    /// NaN where the information matrix is singular (a constant or collinear feature).
    pub(crate) std_errors: Vec<f64>,
    /// Each feature's training mean and standard deviation.
    pub(crate) means: Vec<f64>,
    pub(crate) sds: Vec<f64>,
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Fits `y` on `x` (no missing values), `l2` the penalty on the standardised coefficients.
pub(crate) fn fit(x: &Matrix, y: &[bool], l2: f64, max_iterations: u64) -> Result<Fitted> {
    let (n, p) = (x.rows, x.cols);
    if y.iter().all(|v| *v) || y.iter().all(|v| !*v) {
        return Err(Error::Training(
            "the target has one value in every training row: nothing to learn".into(),
        ));
    }
    let mut means = vec![0.0; p];
    let mut sds = vec![0.0; p];
    let mut standard = Vec::with_capacity(n * p);
    for j in 0..p {
        let column = &x.data[j * n..(j + 1) * n];
        let mean = column.iter().sum::<f64>() / n as f64;
        let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let sd = var.sqrt();
        means[j] = mean;
        sds[j] = sd;
        standard.extend(
            column
                .iter()
                .map(|v| if sd > 0.0 { (v - mean) / sd } else { 0.0 }),
        );
    }
    let features =
        Array2::from_shape_vec((n, p).f(), standard).map_err(|e| Error::Training(e.to_string()))?;
    let targets = Array1::from_vec(y.to_vec());
    let dataset = Dataset::new(features, targets);
    let fitted = LogisticRegression::default()
        .alpha(l2)
        .max_iterations(max_iterations)
        .gradient_tolerance(1e-6)
        .with_intercept(true)
        .fit(&dataset)
        .map_err(|e| Error::Training(e.to_string()))?;
    // linfa models the probability of its "positive" label, which is the more frequent one.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let standard_coefficients: Vec<f64> = fitted.params().iter().map(|w| sign * w).collect();
    let mut intercept = sign * fitted.intercept();
    let mut coefficients = vec![0.0; p];
    for j in 0..p {
        if sds[j] > 0.0 {
            coefficients[j] = standard_coefficients[j] / sds[j];
            intercept -= coefficients[j] * means[j];
        }
    }
    let std_errors = wald_std_errors(x, intercept, &coefficients, l2, &sds);
    Ok(Fitted {
        intercept,
        coefficients,
        std_errors,
        means,
        sds,
    })
}

/// √diag(H⁻¹) for the Hessian of the penalised log-likelihood, H = Zᵀ W Z + P with Z = [1, x],
/// W = p(1 − p) and P the L2 penalty on each coefficient in the features' own scale
/// (`l2 / sd²`), which also keeps H invertible when text levels or flags are collinear. A
/// constant feature has no error (NaN). The intercept's error is left out.
fn wald_std_errors(
    x: &Matrix,
    intercept: f64,
    coefficients: &[f64],
    l2: f64,
    sds: &[f64],
) -> Vec<f64> {
    let (n, p) = (x.rows, x.cols);
    let k = p + 1;
    let mut information = vec![0.0; k * k];
    let mut z = vec![0.0; k];
    for i in 0..n {
        z[0] = 1.0;
        let mut eta = intercept;
        for j in 0..p {
            z[j + 1] = x.get(i, j);
            eta += coefficients[j] * z[j + 1];
        }
        let prob = sigmoid(eta);
        let w = prob * (1.0 - prob);
        for a in 0..k {
            let wa = w * z[a];
            for b in a..k {
                information[a * k + b] += wa * z[b];
            }
        }
    }
    for a in 0..k {
        for b in 0..a {
            information[a * k + b] = information[b * k + a];
        }
    }
    for (j, sd) in sds.iter().enumerate().take(p) {
        let d = (j + 1) * k + (j + 1);
        // A constant column carries no information: a unit stands in so that the rest inverts.
        information[d] += if *sd > 0.0 { l2 / (sd * sd) } else { 1.0 };
    }
    match crate::linalg::invert(&information, k) {
        Some(inverse) => (1..k)
            .map(|j| {
                if sds[j - 1] > 0.0 {
                    inverse[j * k + j].max(0.0).sqrt()
                } else {
                    f64::NAN
                }
            })
            .collect(),
        None => vec![f64::NAN; p],
    }
}
