//! Pieces of generated SQL: quoted identifiers and the column lists of MERGE statements, and
//! reading a single count back.

/// `identifier` as a quoted SQL identifier.
pub(crate) fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// `zone."name"`.
pub(crate) fn table(name: &carelake_common::TableName) -> String {
    format!("{}.{}", name.zone, quote(&name.name))
}

/// `"a", "b"`.
pub(crate) fn columns<S: AsRef<str>>(columns: &[S]) -> String {
    join(columns, ", ", quote)
}

/// `s."a", s."b"`.
pub(crate) fn prefixed<S: AsRef<str>>(alias: &str, columns: &[S]) -> String {
    join(columns, ", ", |c| format!("{alias}.{}", quote(c)))
}

/// `"a" = s."a", "b" = s."b"` (the SET of an UPDATE from source `s`).
pub(crate) fn assignments<S: AsRef<str>>(columns: &[S]) -> String {
    join(columns, ", ", |c| format!("{q} = s.{q}", q = quote(c)))
}

/// `left."k" = right."k" AND …`.
pub(crate) fn equal_keys<S: AsRef<str>>(left: &str, right: &str, keys: &[S]) -> String {
    join(keys, " AND ", |k| {
        format!("{left}.{q} = {right}.{q}", q = quote(k))
    })
}

fn join<S: AsRef<str>>(items: &[S], separator: &str, f: impl Fn(&str) -> String) -> String {
    items
        .iter()
        .map(|i| f(i.as_ref()))
        .collect::<Vec<_>>()
        .join(separator)
}

/// The names of the columns a query returns (planned, not run).
pub(crate) async fn query_columns(
    session: &carelake_sql::Session,
    sql: &str,
) -> crate::Result<Vec<String>> {
    Ok(session
        .context()
        .sql(sql)
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// The first value of the first row as an integer (a `SELECT count(*)`), 0 when absent.
pub(crate) fn first_count(result: &carelake_sql::QueryResult) -> u64 {
    result
        .batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int64).ok())
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0).max(0) as u64)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(columns(&["a", "b\"c"]), "\"a\", \"b\"\"c\"");
        assert_eq!(prefixed("s", &["a"]), "s.\"a\"");
        assert_eq!(assignments(&["a"]), "\"a\" = s.\"a\"");
        assert_eq!(
            equal_keys("t", "s", &["k", "j"]),
            "t.\"k\" = s.\"k\" AND t.\"j\" = s.\"j\""
        );
    }
}
