//! Models in SQL: `CREATE MODEL` trains on a query's rows as the principal (under their grants,
//! row policies and masks), splits by person, stores the fitted model with its features,
//! query and metrics as a new version in the lake; `SHOW MODELS`, `DROP MODEL`,
//! `EVALUATE MODEL`, `EXPLAIN MODEL`; `predict`, `predict_proba` and
//! `predict_contributions` score rows.
//!
//! Who may use a model: an admin, its owner, or whoever may read every table its training
//! query read (a model is a summary of those rows). Training takes CREATE on the analytics
//! zone.

mod parse;
mod udf;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema};
use carelake_lake::{Privilege, StoredModel};
use carelake_model::features::Features;
use carelake_model::{Kind, Model, Options, Params, Split};
use datafusion::logical_expr::LogicalPlan;

pub(crate) use parse::{ModelStatement, parse_model};
pub(crate) use udf::{ModelRegistry, register};

use crate::session::Touched;
use crate::{Error, QueryResult, Result, Session};

fn result(columns: Vec<(&str, ArrayRef)>) -> Result<QueryResult> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    Ok(QueryResult {
        schema,
        batches: vec![batch],
        message: None,
    })
}

fn text(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn number(values: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(
        values
            .into_iter()
            .map(|v| v.filter(|x| x.is_finite()))
            .collect::<Vec<_>>(),
    ))
}

fn count(values: Vec<u64>) -> ArrayRef {
    Arc::new(UInt64Array::from(values))
}

fn option<T: std::str::FromStr>(
    options: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> Result<T> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| Error::Syntax(format!("model option {key}: {v:?} is not a valid value"))),
    }
}

const KNOWN_OPTIONS: [&str; 8] = [
    "split_by",
    "test_fraction",
    "seed",
    "threshold",
    "budget",
    "l2",
    "max_iterations",
    "exclude",
];

/// A training target as booleans: a boolean column, or a number that is 0 or 1.
fn target_values(array: &ArrayRef, target: &str) -> Result<Vec<Option<bool>>> {
    let bad = || {
        Error::Syntax(format!(
            "the target {target} must be a boolean, or a number that is 0 or 1"
        ))
    };
    if *array.data_type() == DataType::Boolean {
        let b = array.as_boolean();
        return Ok((0..b.len())
            .map(|i| (!b.is_null(i)).then(|| b.value(i)))
            .collect());
    }
    if !array.data_type().is_numeric() {
        return Err(bad());
    }
    let f = cast(array, &DataType::Float64)?;
    let f = f.as_primitive::<arrow::datatypes::Float64Type>();
    (0..f.len())
        .map(|i| {
            if f.is_null(i) {
                Ok(None)
            } else {
                match f.value(i) {
                    0.0 => Ok(Some(false)),
                    1.0 => Ok(Some(true)),
                    _ => Err(bad()),
                }
            }
        })
        .collect()
}

impl Session {
    /// Loads the models the principal may use into the registry the `predict` functions read
    /// (a version already loaded is kept).
    pub(crate) async fn refresh_models(&self) -> Result<()> {
        let stored = self.lake.models().current().await?;
        let rules = self.guard.rules();
        let mut loaded = BTreeMap::new();
        let previous = self.models.models.read().clone();
        for model in stored {
            if !self.may_use(&model, &rules) {
                continue;
            }
            let parsed = match previous.get(&model.name) {
                Some((version, m)) if *version == model.version => Arc::clone(m),
                _ => match Model::from_json(&model.body) {
                    Ok(m) => Arc::new(m),
                    Err(e) => {
                        tracing::warn!(model = %model.name, version = model.version, error = %e, "A stored model cannot be read; it is not loaded.");
                        continue;
                    }
                },
            };
            loaded.insert(model.name.clone(), (model.version, parsed));
        }
        *self.models.models.write() = loaded.into_iter().collect();
        Ok(())
    }

    fn may_use(&self, model: &StoredModel, rules: &crate::policy::Rules) -> bool {
        rules.admin
            || model.owner == rules.user
            || model.reads.iter().all(|t| {
                t.split_once('.')
                    .is_some_and(|(s, n)| rules.allows_on(Privilege::Select, s, n))
            })
    }

    /// The current version of a model the principal may use.
    async fn usable(&self, name: &str) -> Result<(StoredModel, Arc<Model>)> {
        let rules = self.guard.rules();
        let stored = self
            .lake
            .models()
            .current()
            .await?
            .into_iter()
            .find(|m| m.name == name && self.may_use(m, &rules))
            .ok_or_else(|| {
                Error::Syntax(format!(
                    "no model {name} (SHOW MODELS lists those you may use)"
                ))
            })?;
        let model = Model::from_json(&stored.body)
            .map_err(|e| Error::Syntax(format!("model {name}: {e}")))?;
        Ok((stored, Arc::new(model)))
    }

    /// Runs a query as the principal; its rows in one batch, and the tables it read.
    async fn query_rows(&self, sql: &str) -> Result<(RecordBatch, BTreeSet<String>)> {
        let plan = self.ctx.state().create_logical_plan(sql).await?;
        if matches!(
            plan,
            LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Copy(_)
        ) {
            return Err(Error::Syntax(
                "a model is trained on a query (SELECT …)".into(),
            ));
        }
        self.authorize(&plan)?;
        let mut touched = Touched::default();
        if let Ok(optimized) = self.ctx.state().optimize(&plan) {
            touched.read(&optimized);
        }
        let frame = self.ctx.execute_logical_plan(plan).await?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        let batch = concat_batches(&schema, &batches)?;
        Ok((batch, touched.tables))
    }

    pub(crate) async fn model_statement(
        &self,
        statement: ModelStatement,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        touched.action = Some("model");
        match statement {
            ModelStatement::Create {
                name,
                or_replace,
                query,
                target,
                kind,
                options,
            } => {
                self.create_model(name, or_replace, query, target, kind, options, touched)
                    .await
            }
            ModelStatement::Show => self.show_models().await,
            ModelStatement::Drop { name, if_exists } => {
                let rules = self.guard.rules();
                let current = self.lake.models().current().await?;
                let Some(model) = current
                    .iter()
                    .find(|m| m.name == name && self.may_use(m, &rules))
                else {
                    return if if_exists {
                        Ok(QueryResult::message("DROP MODEL"))
                    } else {
                        Err(Error::Syntax(format!("no model {name}")))
                    };
                };
                if !(rules.admin || model.owner == rules.user) {
                    return Err(Error::PermissionDenied(format!(
                        "dropping model {name}: only its owner or an admin"
                    )));
                }
                self.lake
                    .models()
                    .drop_model(&name, &self.principal)
                    .await?;
                self.refresh_models().await?;
                Ok(QueryResult::message("DROP MODEL"))
            }
            ModelStatement::Evaluate { name, query } => {
                let (stored, model) = self.usable(&name).await?;
                touched.tables.extend(stored.reads.iter().cloned());
                let metrics = match query {
                    None => model.test.clone(),
                    Some(query) => {
                        let (batch, read) = self.query_rows(&query).await?;
                        touched.tables.extend(read);
                        let column = |n: &str| -> Result<ArrayRef> {
                            batch.column_by_name(n).cloned().ok_or_else(|| {
                                Error::Syntax(format!(
                                    "the query has no column {n}, which the model takes"
                                ))
                            })
                        };
                        let y = target_values(&column(&model.target)?, &model.target)?;
                        let arrays: Vec<ArrayRef> = model
                            .features
                            .columns
                            .iter()
                            .map(|c| column(&c.name))
                            .collect::<Result<_>>()?;
                        let x = model
                            .features
                            .encode(&arrays)
                            .map_err(|e| Error::Syntax(e.to_string()))?;
                        let p = model
                            .predict_proba(&x)
                            .map_err(|e| Error::Syntax(e.to_string()))?;
                        let (p, y): (Vec<f64>, Vec<bool>) = p
                            .into_iter()
                            .zip(y)
                            .filter_map(|(p, y)| y.map(|y| (p, y)))
                            .unzip();
                        carelake_model::metrics::evaluate(&p, &y, model.summary.options.threshold)
                    }
                };
                let c = &metrics.confusion;
                let calibration = serde_json::to_string(&metrics.calibration).unwrap_or_default();
                result(vec![
                    ("model", text(vec![Some(name)])),
                    ("version", Arc::new(UInt32Array::from(vec![stored.version]))),
                    ("rows", count(vec![metrics.rows as u64])),
                    ("positives", count(vec![metrics.positives as u64])),
                    ("auroc", number(vec![Some(metrics.auroc)])),
                    ("auprc", number(vec![Some(metrics.auprc)])),
                    ("brier", number(vec![Some(metrics.brier)])),
                    ("threshold", number(vec![Some(c.threshold)])),
                    ("true_positive", count(vec![c.true_positive as u64])),
                    ("false_positive", count(vec![c.false_positive as u64])),
                    ("true_negative", count(vec![c.true_negative as u64])),
                    ("false_negative", count(vec![c.false_negative as u64])),
                    ("sensitivity", number(vec![Some(c.sensitivity())])),
                    ("specificity", number(vec![Some(c.specificity())])),
                    ("precision", number(vec![Some(c.precision())])),
                    ("calibration", text(vec![Some(calibration)])),
                ])
            }
            ModelStatement::Explain { name } => {
                let (stored, model) = self.usable(&name).await?;
                touched.tables.extend(stored.reads.iter().cloned());
                let names = model.features.names();
                let coefficients = match &model.params {
                    Params::Logistic { coefficients, .. } => Some(coefficients),
                    Params::Gbdt { .. } => None,
                };
                let mut order: Vec<usize> = (0..names.len()).collect();
                order.sort_by(|&a, &b| model.importance[b].total_cmp(&model.importance[a]));
                let coef = |f: fn(&carelake_model::Coefficient) -> f64| {
                    number(
                        order
                            .iter()
                            .map(|&j| coefficients.map(|c| f(&c[j])))
                            .collect(),
                    )
                };
                let input: Vec<Option<String>> = model
                    .features
                    .columns
                    .iter()
                    .flat_map(|c| c.feature_names().into_iter().map(|_| Some(c.name.clone())))
                    .collect();
                result(vec![
                    (
                        "feature",
                        text(order.iter().map(|&j| Some(names[j].clone())).collect()),
                    ),
                    (
                        "input_column",
                        text(order.iter().map(|&j| input[j].clone()).collect()),
                    ),
                    (
                        "importance",
                        number(order.iter().map(|&j| Some(model.importance[j])).collect()),
                    ),
                    ("coefficient", coef(|c| c.estimate)),
                    ("std_error", coef(|c| c.std_error)),
                    ("odds_ratio", coef(|c| c.odds_ratio)),
                    ("ci_low", coef(|c| c.ci_low)),
                    ("ci_high", coef(|c| c.ci_high)),
                ])
            }
        }
    }

    async fn show_models(&self) -> Result<QueryResult> {
        let rules = self.guard.rules();
        let models: Vec<(StoredModel, Option<Model>)> = self
            .lake
            .models()
            .current()
            .await?
            .into_iter()
            .filter(|m| self.may_use(m, &rules))
            .map(|m| {
                let parsed = Model::from_json(&m.body).ok();
                (m, parsed)
            })
            .collect();
        let col = |f: &dyn Fn(&StoredModel, Option<&Model>) -> Option<String>| {
            text(models.iter().map(|(s, m)| f(s, m.as_ref())).collect())
        };
        let num = |f: &dyn Fn(&Model) -> f64| {
            number(models.iter().map(|(_, m)| m.as_ref().map(f)).collect())
        };
        result(vec![
            ("name", col(&|s, _| Some(s.name.clone()))),
            (
                "version",
                Arc::new(UInt32Array::from(
                    models.iter().map(|(s, _)| s.version).collect::<Vec<_>>(),
                )),
            ),
            ("type", col(&|s, _| Some(s.kind.clone()))),
            ("target", col(&|_, m| m.map(|m| m.target.clone()))),
            (
                "inputs",
                col(&|_, m| {
                    m.map(|m| {
                        m.features
                            .columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                }),
            ),
            ("owner", col(&|s, _| Some(s.owner.clone()))),
            ("created_at", col(&|s, _| Some(s.created_at.to_rfc3339()))),
            ("train_rows", num(&|m| m.summary.train_rows as f64)),
            ("test_rows", num(&|m| m.summary.test_rows as f64)),
            ("test_auroc", num(&|m| m.test.auroc)),
            ("test_auprc", num(&|m| m.test.auprc)),
            ("test_brier", num(&|m| m.test.brier)),
            ("fit_seconds", num(&|m| m.summary.fit_seconds)),
            ("training_query", col(&|s, _| Some(s.training_sql.clone()))),
        ])
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_model(
        &self,
        name: String,
        or_replace: bool,
        query: String,
        target: String,
        kind: Option<String>,
        options: BTreeMap<String, String>,
        touched: &mut Touched,
    ) -> Result<QueryResult> {
        let rules = self.guard.rules();
        if !rules.allows_on(Privilege::Create, "analytics", &name) {
            return Err(Error::PermissionDenied(
                "CREATE MODEL takes CREATE on the analytics zone".into(),
            ));
        }
        if let Some(unknown) = options
            .keys()
            .find(|k| !KNOWN_OPTIONS.contains(&k.as_str()))
        {
            return Err(Error::Syntax(format!(
                "unknown model option {unknown} (known: {})",
                KNOWN_OPTIONS.join(", ")
            )));
        }
        let kind: Kind = kind
            .as_deref()
            .unwrap_or("logistic")
            .parse()
            .map_err(|e: carelake_model::Error| Error::Syntax(e.to_string()))?;
        let defaults = Options::default();
        let settings = Options {
            seed: option(&options, "seed", defaults.seed)?,
            test_fraction: option(&options, "test_fraction", defaults.test_fraction)?,
            threshold: option(&options, "threshold", defaults.threshold)?,
            budget: option(&options, "budget", defaults.budget)?,
            l2: option(&options, "l2", defaults.l2)?,
            max_iterations: option(&options, "max_iterations", defaults.max_iterations)?,
        };
        if !(settings.test_fraction > 0.0 && settings.test_fraction < 1.0) {
            return Err(Error::Syntax("test_fraction is between 0 and 1".into()));
        }
        let existing = self
            .lake
            .models()
            .current()
            .await?
            .into_iter()
            .find(|m| m.name == name);
        if let Some(existing) = &existing {
            if !or_replace {
                return Err(Error::Syntax(format!(
                    "model {name} exists: CREATE OR REPLACE MODEL trains a new version"
                )));
            }
            if !(rules.admin || existing.owner == rules.user) {
                return Err(Error::PermissionDenied(format!(
                    "replacing model {name}: only its owner or an admin"
                )));
            }
        }
        let (batch, reads) = self.query_rows(&query).await?;
        touched.tables.extend(reads.iter().cloned());
        let schema = batch.schema();
        let find = |n: &str| {
            schema
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(n))
        };
        let target_at = find(&target)
            .ok_or_else(|| Error::Syntax(format!("the query has no column {target} (TARGET)")))?;
        let target_name = schema.field(target_at).name().clone();
        let split_by = match options.get("split_by").map(String::as_str) {
            Some(v) if v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("row") => None,
            Some(v) => Some(
                find(v).ok_or_else(|| Error::Syntax(format!("the query has no column {v} (split_by)")))?,
            ),
            None => Some(find("person_key").ok_or_else(|| {
                Error::Syntax(
                    "name the column that identifies a patient with OPTIONS (split_by = 'column') so that no patient is on both sides of the split (or split_by = 'row' for data without patients)"
                        .into(),
                )
            })?),
        };
        let excluded: Vec<String> = options
            .get("exclude")
            .map(|v| {
                v.split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        let y = target_values(batch.column(target_at), &target_name)?;
        let keep: Vec<u32> = (0..batch.num_rows())
            .filter(|&i| y[i].is_some())
            .map(|i| i as u32)
            .collect();
        let keep_array = UInt32Array::from(keep.clone());
        let take = |a: &ArrayRef| -> Result<ArrayRef> {
            Ok(arrow::compute::take(a.as_ref(), &keep_array, None)?)
        };
        let y: Vec<bool> = keep
            .iter()
            .map(|&i| y[i as usize].unwrap_or(false))
            .collect();
        let mut columns = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if i == target_at
                || Some(i) == split_by
                || excluded.contains(&field.name().to_ascii_lowercase())
            {
                continue;
            }
            columns.push((field.name().clone(), take(batch.column(i))?));
        }
        let features = Features::learn(&columns).map_err(|e| Error::Syntax(e.to_string()))?;
        let arrays: Vec<ArrayRef> = columns.into_iter().map(|(_, a)| a).collect();
        let x = features
            .encode(&arrays)
            .map_err(|e| Error::Syntax(e.to_string()))?;
        let split = match split_by {
            None => Split::by_row(x.rows, settings.seed, settings.test_fraction),
            Some(at) => {
                let keys = cast(&take(batch.column(at))?, &DataType::Utf8)?;
                let keys = keys.as_string::<i32>();
                let mut train_keys = BTreeSet::new();
                let mut test_keys = BTreeSet::new();
                let is_test: Vec<bool> = (0..keys.len())
                    .map(|i| {
                        let key = if keys.is_null(i) { "" } else { keys.value(i) };
                        let test = carelake_model::split::in_test(
                            settings.seed,
                            key.as_bytes(),
                            settings.test_fraction,
                        );
                        if test {
                            test_keys.insert(key);
                        } else {
                            train_keys.insert(key);
                        }
                        test
                    })
                    .collect();
                Split {
                    is_test,
                    train_groups: train_keys.len(),
                    test_groups: test_keys.len(),
                    by: Some(schema.field(at).name().clone()),
                }
            }
        };
        let trained = tokio::task::spawn_blocking(move || {
            carelake_model::train(kind, &target_name, features, &x, &y, &split, settings)
        })
        .await
        .map_err(|e| Error::Syntax(format!("training stopped: {e}")))?
        .map_err(|e| Error::Syntax(e.to_string()))?;
        let version = self.lake.models().next_version(&name).await?;
        let body = trained
            .to_json()
            .map_err(|e| Error::Syntax(e.to_string()))?;
        self.lake
            .models()
            .save(
                StoredModel {
                    name: name.clone(),
                    version,
                    kind: kind.as_str().to_string(),
                    owner: self.principal.name.clone(),
                    created_at: chrono::Utc::now(),
                    reads: reads.into_iter().collect(),
                    training_sql: query,
                    body,
                },
                &self.principal,
            )
            .await?;
        self.refresh_models().await?;
        let m = &trained;
        result(vec![
            ("model", text(vec![Some(name)])),
            ("version", Arc::new(UInt32Array::from(vec![version]))),
            ("type", text(vec![Some(kind.as_str().to_string())])),
            ("train_rows", count(vec![m.summary.train_rows as u64])),
            ("test_rows", count(vec![m.summary.test_rows as u64])),
            ("train_people", count(vec![m.summary.train_groups as u64])),
            ("test_people", count(vec![m.summary.test_groups as u64])),
            ("test_auroc", number(vec![Some(m.test.auroc)])),
            ("test_auprc", number(vec![Some(m.test.auprc)])),
            ("test_brier", number(vec![Some(m.test.brier)])),
            ("train_auroc", number(vec![Some(m.train.auroc)])),
            ("fit_seconds", number(vec![Some(m.summary.fit_seconds)])),
        ])
    }
}
