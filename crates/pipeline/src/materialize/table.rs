//! A table rebuilt in full from the model's query.

use carelake_sql::Session;

use super::count;
use crate::error::Result;
use crate::project::Model;
use crate::runner::{Executed, ModelStatus};
use crate::sql_text::{self};

/// Builds a model's table in full from its query.
pub(crate) async fn build_table(
    session: &Session,
    model: &Model,
    rows_in: u64,
    upstream_versions: String,
) -> Result<Executed> {
    let target = &model.target;
    session
        .sql(&format!(
            "CREATE OR REPLACE TABLE {} AS {}",
            sql_text::table(target),
            model.sql
        ))
        .await?;
    Ok(Executed {
        status: ModelStatus::Success,
        rows_in,
        rows_out: count(session, target).await?,
        upstream_versions,
    })
}
