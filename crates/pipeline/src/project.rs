//! A pipeline project: a folder of models. Each model is one `.sql` file under `models/`,
//! writing the table named after the file in the zone named after its folder
//! (`models/analytics/fact_encounter.sql` → `analytics.fact_encounter`; files directly in
//! `models/` write to `curated`). A header of `-- key: value` comment lines configures it:
//!
//! ```sql
//! -- materialized: incremental        (table | view | incremental | scd2; default table)
//! -- unique_key: encounter_id         (the merge key of incremental and scd2 models; checked
//!                                      for uniqueness and completeness by the dq model)
//! -- incremental_on: raw.encounters   (incremental: the tables whose new loads drive the merge)
//! -- optional: raw.hl7_events         (tables that may not exist: the UNION ALL branches
//!                                      reading them are left out until they do)
//! -- retries: 2                       (attempts after the first, with exponential backoff)
//! -- schedule: 0 */6 * * *            (cron, for `carelake serve`)
//! -- description: One row per encounter.
//! SELECT …
//! ```
//!
//! Built-in models written in Rust have a header and no SQL: `-- builtin: mpi` with
//! `-- input: curated.patient_records` runs the master patient index; `-- builtin: dq` with
//! `-- input: table, table…` checks data quality into `dq_results`.

use std::path::{Path, PathBuf};

use carelake_common::{TableName, Zone};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How a model's result is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialization {
    /// A Delta table rebuilt from the query on every run with new input.
    Table,
    /// A view in the catalog: the query runs when read.
    View,
    /// A Delta table into which the rows computed from new loads are merged by unique key.
    Incremental,
    /// A slowly changing dimension, type 2: a changed row closes its current version
    /// (`effective_to`, `is_current = false`) and adds a new one; unchanged rows stay as they are.
    Scd2,
    /// A model written in Rust (the master patient index).
    Builtin,
}

impl Materialization {
    /// The name used in headers and the run history.
    pub fn as_str(self) -> &'static str {
        match self {
            Materialization::Table => "table",
            Materialization::View => "view",
            Materialization::Incremental => "incremental",
            Materialization::Scd2 => "scd2",
            Materialization::Builtin => "builtin",
        }
    }
}

/// Built-in models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// The master patient index: links the input's person records and writes
    /// `<zone>.mpi_links`, `<zone>.mpi_review`, `<zone>.person` and `<zone>.person_xref`.
    Mpi {
        /// The person records (`source`, `record_id`, `updated_at` and field columns).
        input: TableName,
    },
    /// Data quality checks over the input tables (completeness, validity, uniqueness,
    /// plausibility), appended to `<zone>.dq_results` on every run.
    Dq {
        /// The tables checked.
        inputs: Vec<TableName>,
    },
}

/// A comma-separated list of tables.
fn table_list(value: &str) -> std::result::Result<Vec<TableName>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<TableName>().map_err(|e| e.to_string()))
        .collect()
}

/// One model.
#[derive(Debug, Clone)]
pub struct Model {
    /// The file stem.
    pub name: String,
    /// The table or view written.
    pub target: TableName,
    /// How the result is kept.
    pub materialization: Materialization,
    /// The query (empty for built-ins).
    pub sql: String,
    /// Merge key of an incremental model.
    pub unique_key: Vec<String>,
    /// The table whose new loads drive an incremental model.
    pub incremental_on: Vec<TableName>,
    /// Tables that may not exist yet (a feed not loaded): the `UNION ALL` branches reading
    /// them are left out of the query until they do.
    pub optional: Vec<TableName>,
    /// Attempts after the first.
    pub retries: u32,
    /// Cron schedule for `carelake serve`.
    pub schedule: Option<String>,
    /// What the model is.
    pub description: Option<String>,
    /// The built-in, for built-in models.
    pub builtin: Option<Builtin>,
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the file: a changed model is rebuilt in full.
    pub definition_sha256: String,
}

impl Model {
    /// Every table the model writes.
    pub fn outputs(&self) -> Vec<TableName> {
        match &self.builtin {
            Some(Builtin::Mpi { .. }) => ["mpi_links", "mpi_review", "person", "person_xref"]
                .iter()
                .map(|n| TableName {
                    zone: self.target.zone,
                    name: (*n).to_string(),
                })
                .collect(),
            Some(Builtin::Dq { .. }) => vec![TableName {
                zone: self.target.zone,
                name: "dq_results".into(),
            }],
            None => vec![self.target.clone()],
        }
    }

    /// Parses one model file's text.
    pub fn parse(name: &str, zone: Zone, text: &str, path: PathBuf) -> Result<Model> {
        let model_error = |reason: String| Error::Model {
            model: name.to_string(),
            reason,
        };
        if zone == Zone::Raw {
            return Err(model_error(
                "models write to curated or analytics; raw holds what was loaded".into(),
            ));
        }
        let target = TableName::new(zone, name).map_err(|e| model_error(e.to_string()))?;
        let mut materialization = None;
        let mut unique_key = Vec::new();
        let mut incremental_on = Vec::new();
        let mut optional = Vec::new();
        let mut retries = 2;
        let mut schedule = None;
        let mut description = None;
        let mut builtin_name = None;
        let mut input: Vec<TableName> = Vec::new();
        let mut body = String::new();
        let mut in_header = true;
        for line in text.lines() {
            let trimmed = line.trim();
            if in_header {
                if trimmed.is_empty() {
                    continue;
                }
                if let Some(comment) = trimmed.strip_prefix("--") {
                    if let Some((key, value)) = comment.split_once(':') {
                        let key = key.trim();
                        let value = value.trim();
                        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                            && !key.is_empty()
                        {
                            match key {
                                "materialized" => {
                                    materialization = Some(match value {
                                        "table" => Materialization::Table,
                                        "view" => Materialization::View,
                                        "incremental" => Materialization::Incremental,
                                        "scd2" => Materialization::Scd2,
                                        other => {
                                            return Err(model_error(format!(
                                                "materialized must be table, view, incremental or scd2, not {other:?}"
                                            )));
                                        }
                                    })
                                }
                                "unique_key" => {
                                    unique_key = value
                                        .split(',')
                                        .map(|k| k.trim().to_string())
                                        .filter(|k| !k.is_empty())
                                        .collect()
                                }
                                "incremental_on" => {
                                    incremental_on = table_list(value).map_err(model_error)?
                                }
                                "optional" => optional = table_list(value).map_err(model_error)?,
                                "retries" => {
                                    retries = value.parse().map_err(|_| {
                                        model_error(format!(
                                            "retries must be a number, not {value:?}"
                                        ))
                                    })?
                                }
                                "schedule" => schedule = Some(value.to_string()),
                                "description" => description = Some(value.to_string()),
                                "builtin" => builtin_name = Some(value.to_string()),
                                "input" => input.extend(table_list(value).map_err(model_error)?),
                                other => {
                                    return Err(model_error(format!(
                                        "unknown setting {other:?} (known: materialized, unique_key, incremental_on, optional, retries, schedule, description, builtin, input)"
                                    )));
                                }
                            }
                        }
                    }
                    continue;
                }
                in_header = false;
            }
            body.push_str(line);
            body.push('\n');
        }
        let sql = body.trim().trim_end_matches(';').trim().to_string();
        let builtin = match builtin_name.as_deref() {
            None => None,
            Some("mpi") => match input.as_slice() {
                [one] => Some(Builtin::Mpi { input: one.clone() }),
                _ => {
                    return Err(model_error(
                        "the mpi model needs one `-- input: zone.table`".into(),
                    ));
                }
            },
            Some("dq") if input.is_empty() => {
                return Err(model_error(
                    "the dq model needs `-- input: zone.table, zone.table…`".into(),
                ));
            }
            Some("dq") => Some(Builtin::Dq { inputs: input }),
            Some(other) => return Err(model_error(format!("no built-in model {other:?}"))),
        };
        let materialization = match (&builtin, materialization) {
            (Some(_), None) => Materialization::Builtin,
            (Some(_), Some(_)) => {
                return Err(model_error(
                    "a built-in model takes no materialized setting".into(),
                ));
            }
            (None, m) => m.unwrap_or(Materialization::Table),
        };
        if builtin.is_none() && sql.is_empty() {
            return Err(model_error("no SQL after the header".into()));
        }
        if builtin.is_some() && !sql.is_empty() {
            return Err(model_error("a built-in model has no SQL".into()));
        }
        if matches!(
            materialization,
            Materialization::Incremental | Materialization::Scd2
        ) && unique_key.is_empty()
        {
            return Err(model_error(format!(
                "an {} model needs `-- unique_key: column[, column…]`",
                materialization.as_str()
            )));
        }
        if let Some(schedule) = &schedule
            && (schedule.split_whitespace().count() != 5
                || <croner::Cron as std::str::FromStr>::from_str(schedule).is_err())
        {
            return Err(model_error(format!(
                "schedule must be a five-field cron expression, not {schedule:?}"
            )));
        }
        let definition_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        Ok(Model {
            name: name.to_string(),
            target,
            materialization,
            sql,
            unique_key,
            incremental_on,
            optional,
            retries,
            schedule,
            description,
            builtin,
            path,
            definition_sha256,
        })
    }
}

/// A set of models.
#[derive(Debug, Clone)]
pub struct Project {
    /// The models, by name.
    pub models: Vec<Model>,
    /// Where they came from (a folder, or "built-in default project").
    pub origin: String,
}

impl Project {
    /// Loads `<dir>/models/**.sql`.
    pub fn load(dir: &Path) -> Result<Project> {
        let models_dir = dir.join("models");
        let mut files = Vec::new();
        collect_sql(&models_dir, &mut files)?;
        files.sort();
        let mut models = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let zone = match path.parent() {
                Some(parent) if parent != models_dir => {
                    let folder = parent
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    folder.parse::<Zone>().map_err(|_| Error::Model {
                        model: name.clone(),
                        reason: format!(
                            "folder {folder:?} is not a zone (models/curated/ or models/analytics/)"
                        ),
                    })?
                }
                _ => Zone::Curated,
            };
            models.push(Model::parse(&name, zone, &text, path)?);
        }
        Project::new(models, dir.display().to_string())
    }

    /// A project from models; checks that no two write the same table.
    pub fn new(models: Vec<Model>, origin: String) -> Result<Project> {
        let mut seen: std::collections::HashMap<TableName, String> =
            std::collections::HashMap::new();
        for model in &models {
            for output in model.outputs() {
                if let Some(first) = seen.insert(output.clone(), model.name.clone()) {
                    return Err(Error::DuplicateTarget {
                        first,
                        second: model.name.clone(),
                        table: output.to_string(),
                    });
                }
            }
        }
        let mut names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Model {
                model: w[0].to_string(),
                reason: "two model files have this name".into(),
            });
        }
        Ok(Project { models, origin })
    }

    /// The model named `name`.
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Models whose schedule falls in `(after, until]`, by name.
    pub fn due(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Vec<String> {
        self.models
            .iter()
            .filter(|m| {
                m.schedule
                    .as_deref()
                    .and_then(|s| <croner::Cron as std::str::FromStr>::from_str(s).ok())
                    .and_then(|cron| cron.find_next_occurrence(&after, false).ok())
                    .is_some_and(|next| next <= until)
            })
            .map(|m| m.name.clone())
            .collect()
    }

    /// Whether any model has a schedule.
    pub fn has_schedules(&self) -> bool {
        self.models.iter().any(|m| m.schedule.is_some())
    }
}

/// The default project shipped with carelake (for the generated hospital network; copy it with
/// `carelake project init` and change it).
const DEFAULT_MODELS: &[(&str, &str)] = &[
    (
        "curated/patient_records.sql",
        include_str!("../project/models/curated/patient_records.sql"),
    ),
    (
        "curated/mpi.sql",
        include_str!("../project/models/curated/mpi.sql"),
    ),
    (
        "curated/encounters.sql",
        include_str!("../project/models/curated/encounters.sql"),
    ),
    (
        "curated/diagnoses.sql",
        include_str!("../project/models/curated/diagnoses.sql"),
    ),
    (
        "curated/labs.sql",
        include_str!("../project/models/curated/labs.sql"),
    ),
    (
        "curated/vitals.sql",
        include_str!("../project/models/curated/vitals.sql"),
    ),
    (
        "analytics/dim_patient.sql",
        include_str!("../project/models/analytics/dim_patient.sql"),
    ),
    (
        "analytics/dim_facility.sql",
        include_str!("../project/models/analytics/dim_facility.sql"),
    ),
    (
        "analytics/dim_provider.sql",
        include_str!("../project/models/analytics/dim_provider.sql"),
    ),
    (
        "analytics/dim_diagnosis.sql",
        include_str!("../project/models/analytics/dim_diagnosis.sql"),
    ),
    (
        "analytics/fact_encounter.sql",
        include_str!("../project/models/analytics/fact_encounter.sql"),
    ),
    (
        "analytics/mart_readmissions.sql",
        include_str!("../project/models/analytics/mart_readmissions.sql"),
    ),
    (
        "analytics/readmission_risk.sql",
        include_str!("../project/models/analytics/readmission_risk.sql"),
    ),
    (
        "analytics/worklist_readmission_risk.sql",
        include_str!("../project/models/analytics/worklist_readmission_risk.sql"),
    ),
    (
        "analytics/fact_observation.sql",
        include_str!("../project/models/analytics/fact_observation.sql"),
    ),
    (
        "analytics/fact_claim.sql",
        include_str!("../project/models/analytics/fact_claim.sql"),
    ),
    (
        "analytics/fact_claim_line.sql",
        include_str!("../project/models/analytics/fact_claim_line.sql"),
    ),
    (
        "analytics/dim_date.sql",
        include_str!("../project/models/analytics/dim_date.sql"),
    ),
    (
        "analytics/mart_census.sql",
        include_str!("../project/models/analytics/mart_census.sql"),
    ),
    (
        "analytics/mart_length_of_stay.sql",
        include_str!("../project/models/analytics/mart_length_of_stay.sql"),
    ),
    (
        "analytics/data_quality.sql",
        include_str!("../project/models/analytics/data_quality.sql"),
    ),
];

impl Project {
    /// The default project, built in.
    pub fn default_project() -> Result<Project> {
        let mut models = Vec::new();
        for (path, text) in DEFAULT_MODELS {
            let (zone, file) = path.split_once('/').unwrap_or(("curated", path));
            let name = file.trim_end_matches(".sql");
            let zone = zone.parse::<Zone>()?;
            models.push(Model::parse(
                name,
                zone,
                text,
                PathBuf::from(format!("(built in)/models/{path}")),
            )?);
        }
        Project::new(models, "the built-in default project".into())
    }

    /// Writes the default project's model files under `<dir>/models/`, refusing to overwrite.
    pub fn write_default(dir: &Path) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (path, text) in DEFAULT_MODELS {
            let file = dir.join("models").join(path);
            if file.exists() {
                return Err(Error::Model {
                    model: path.to_string(),
                    reason: format!("{} exists; not overwriting", file.display()),
                });
            }
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|source| Error::Read {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            std::fs::write(&file, text).map_err(|source| Error::Read {
                path: file.clone(),
                source,
            })?;
            written.push(file);
        }
        Ok(written)
    }
}

fn collect_sql(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            collect_sql(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Model> {
        Model::parse("m", Zone::Analytics, text, PathBuf::from("m.sql"))
    }

    #[test]
    fn header_settings() {
        let m = parse(
            "-- materialized: incremental\n-- unique_key: a, b\n-- incremental_on: raw.e\n-- a plain comment\n\nSELECT 1 AS a, 2 AS b;\n",
        )
        .unwrap();
        assert_eq!(m.materialization, Materialization::Incremental);
        assert_eq!(m.unique_key, ["a", "b"]);
        assert_eq!(m.incremental_on[0].to_string(), "raw.e");
        assert_eq!(m.sql, "SELECT 1 AS a, 2 AS b");
        assert_eq!(m.target.to_string(), "analytics.m");
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse("-- materialised: table\nSELECT 1").unwrap_err();
        assert!(
            e.to_string().contains("unknown setting \"materialised\""),
            "{e}"
        );
        let e = parse("-- materialized: incremental\nSELECT 1").unwrap_err();
        assert!(e.to_string().contains("unique_key"), "{e}");
        let e = parse("-- schedule: hourly\nSELECT 1").unwrap_err();
        assert!(e.to_string().contains("cron"), "{e}");
        let e = parse("-- builtin: mpi\n").unwrap_err();
        assert!(e.to_string().contains("input"), "{e}");
        let m = parse("-- builtin: mpi\n-- input: curated.patient_records\n").unwrap();
        assert_eq!(m.outputs().len(), 4);
    }

    #[test]
    fn schedules_fall_due() {
        use chrono::TimeZone;
        let hourly = parse("-- schedule: 0 * * * *\nSELECT 1").unwrap();
        let project = Project::new(vec![hourly], "test".into()).unwrap();
        let at = |h, m| chrono::Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap();
        assert_eq!(project.due(at(9, 30), at(10, 0)), ["m"]);
        assert!(project.due(at(10, 0), at(10, 59)).is_empty());
        assert!(parse("-- schedule: 61 * * * *\nSELECT 1").is_err());
    }

    #[test]
    fn default_project_parses() {
        let project = Project::default_project().unwrap();
        assert_eq!(project.models.len(), DEFAULT_MODELS.len());
        let dir = tempfile::tempdir().unwrap();
        Project::write_default(dir.path()).unwrap();
        let copy = Project::load(dir.path()).unwrap();
        assert_eq!(copy.models.len(), project.models.len());
        assert!(
            Project::write_default(dir.path()).is_err(),
            "never overwrites"
        );
    }
}
