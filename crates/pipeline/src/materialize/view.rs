//! A model materialised as a view: its query, stored in the catalog, run when read.

use carelake_sql::Session;

use crate::error::Result;
use crate::project::Model;
use crate::runner::{Executed, ModelStatus};
use crate::sql_text::{self};

/// Creates or replaces the model's view.
pub(crate) async fn build_view(
    session: &Session,
    model: &Model,
    rows_in: u64,
    upstream_versions: String,
) -> Result<Executed> {
    session
        .sql(&format!(
            "CREATE OR REPLACE VIEW {} AS {}",
            sql_text::table(&model.target),
            model.sql
        ))
        .await?;
    Ok(Executed {
        status: ModelStatus::Success,
        rows_in,
        rows_out: 0,
        upstream_versions,
    })
}
