//! Splitting scripts into statements, the order in which a statement meets carelake's own
//! parsers and then DataFusion's ([`parse_statement`]), and the small parsers for `COPY … FROM`,
//! `VACUUM` and `OPTIMIZE`.

use carelake_common::TableName;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use crate::alert::AlertStatement;
use crate::govern::Governed;
use crate::matview::MatViewStatement;
use crate::model::ModelStatement;
use crate::{Error, Result};

/// One statement as a session reads it: one of carelake's own, or SQL for DataFusion.
#[derive(Debug)]
pub(crate) enum Parsed {
    Alert(AlertStatement),
    MatView(MatViewStatement),
    Model(ModelStatement),
    Governed(Governed),
    Custom(Custom),
    Sql(Box<DFStatement>),
}

/// Parses one statement (identity calls already normalised): carelake's statements first
/// (alerts, materialized views, models, governance, `COPY`/`VACUUM`/`OPTIMIZE`), then DataFusion.
pub(crate) fn parse_statement(sql: &str) -> Result<Parsed> {
    if let Some(alert) = crate::alert::parse_alert(sql)? {
        return Ok(Parsed::Alert(alert));
    }
    if let Some(view) = crate::matview::parse_matview(sql)? {
        return Ok(Parsed::MatView(view));
    }
    if let Some(model) = crate::model::parse_model(sql)? {
        return Ok(Parsed::Model(model));
    }
    if let Some(governed) = crate::govern::parse_governed(sql)? {
        return Ok(Parsed::Governed(governed));
    }
    if let Some(custom) = parse_custom(sql, crate::session::DEFAULT_ZONE)? {
        return Ok(Parsed::Custom(custom));
    }
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| Error::Syntax(e.to_string()))?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => Ok(Parsed::Sql(Box::new(statement))),
        _ => Err(Error::Syntax("expected one statement".into())),
    }
}

/// Parses every statement of a script as a session would before running it, running nothing;
/// returns how many there are, or the first syntax error. For tools that check a script, and
/// for the fuzz target of the statement parsers.
pub fn check_script(script: &str) -> Result<usize> {
    let statements = split_statements(script);
    for sql in &statements {
        parse_statement(&normalize_identity_calls(sql))?;
    }
    Ok(statements.len())
}

/// Splits a script into statements at the semicolons sqlparser's tokenizer finds outside
/// strings (single, double and dollar quotes), identifiers and comments (`--` and nested
/// `/* */`). Comments are dropped (a line comment leaves its line break), each statement keeps
/// its text as written otherwise, and empty statements are dropped. A script the tokenizer
/// cannot read (an unterminated string or comment) comes back whole, as one statement, so that
/// its parse reports the error and no part of it runs.
pub fn split_statements(script: &str) -> Vec<String> {
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, script).tokenize_with_location() else {
        let whole = script.trim();
        return if whole.is_empty() {
            Vec::new()
        } else {
            vec![whole.to_string()]
        };
    };
    let offsets = LineOffsets::new(script);
    // Tokens (whitespace and comments included) tile the script: each one's text runs from its
    // start to the next one's.
    let starts: Vec<usize> = tokens
        .iter()
        .map(|t| offsets.byte(script, t.span.start.line, t.span.start.column))
        .chain(std::iter::once(script.len()))
        .collect();
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut finish = |current: &mut String| {
        let statement = current.trim();
        if !statement.is_empty() {
            statements.push(statement.to_string());
        }
        current.clear();
    };
    for (i, TokenWithSpan { token, .. }) in tokens.iter().enumerate() {
        match token {
            Token::SemiColon => finish(&mut current),
            Token::Whitespace(Whitespace::SingleLineComment { .. }) => current.push('\n'),
            Token::Whitespace(Whitespace::MultiLineComment(_)) => current.push(' '),
            Token::EOF => {}
            _ => current.push_str(&script[starts[i]..starts[i + 1].max(starts[i])]),
        }
    }
    finish(&mut current);
    statements
}

/// Byte offsets of line starts, to turn the tokenizer's 1-based line and column (in
/// characters) into a byte offset.
struct LineOffsets(Vec<usize>);

impl LineOffsets {
    fn new(text: &str) -> Self {
        Self(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }

    fn byte(&self, text: &str, line: u64, column: u64) -> usize {
        let Some(&line_start) = self.0.get((line as usize).saturating_sub(1)) else {
            return text.len();
        };
        text[line_start..]
            .char_indices()
            .map(|(i, _)| line_start + i)
            .chain(std::iter::once(text.len()))
            .nth((column as usize).saturating_sub(1))
            .unwrap_or(text.len())
    }
}

/// The characters of `text` outside single and double quotes (the quotes themselves
/// included), each with its byte offset and the depth of parentheses around it (an opening
/// parenthesis stands at the depth outside it, a closing one at the depth inside).
pub(crate) fn outside_quotes(text: &str) -> impl Iterator<Item = (usize, char, usize)> + '_ {
    let (mut depth, mut quote) = (0usize, None::<char>);
    text.char_indices().filter_map(move |(i, c)| match quote {
        Some(q) => {
            if c == q {
                quote = None;
            }
            None
        }
        None => {
            let at = depth;
            match c {
                '\'' | '"' => quote = Some(c),
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            Some((i, c, at))
        }
    })
}

/// `text` cut at each `sep` outside quotes and parentheses.
pub(crate) fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c, depth) in outside_quotes(text) {
        if c == sep && depth == 0 {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `current_user()` and `session_user()` as SQL spells them (`current_user`): the SQL parser
/// takes these names as keywords that take no parentheses. Text in quotes is left alone.
pub(crate) fn normalize_identity_calls(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut i = 0;
    let bytes = sql.as_bytes();
    while i < sql.len() {
        let c = sql[i..].chars().next().unwrap_or(' ');
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            i += 1;
            continue;
        }
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary {
            let rest = &sql[i..];
            let mut matched = false;
            for name in ["current_user", "session_user"] {
                if rest
                    .get(..name.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(name))
                {
                    let after = rest[name.len()..].trim_start();
                    if let Some(tail) = after.strip_prefix('(')
                        && tail.trim_start().starts_with(')')
                    {
                        out.push_str(&rest[..name.len()]);
                        let consumed = rest.len() - tail.trim_start().len() + 1;
                        i += consumed;
                        matched = true;
                        break;
                    }
                }
            }
            if matched {
                continue;
            }
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Tokens of a short custom statement: words, quoted strings and punctuation.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<String>> {
    let mut tokens = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::from("'");
            loop {
                match chars.next() {
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    Some('\'') => break,
                    Some(c) => s.push(c),
                    None => return Err(Error::Syntax("unterminated string".into())),
                }
            }
            tokens.push(s);
        } else if "(),=".contains(c) {
            tokens.push(c.to_string());
            chars.next();
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || "(),='".contains(c) {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(word);
        }
    }
    Ok(tokens)
}

fn table_name(token: Option<&String>, default_zone: &str) -> Result<TableName> {
    let token = token.ok_or_else(|| Error::Syntax("expected a table name".into()))?;
    let unquoted = token.replace('"', "");
    let qualified = if unquoted.contains('.') {
        unquoted
    } else {
        format!("{default_zone}.{unquoted}")
    };
    Ok(qualified.parse()?)
}

fn is(token: Option<&String>, word: &str) -> bool {
    token.is_some_and(|t| t.eq_ignore_ascii_case(word))
}

/// A statement handled by carelake itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Custom {
    /// `COPY raw.t FROM 'path' (FORMAT csv, HEADER true, MAX_REJECT_RATIO 0.01)`
    CopyFrom {
        table: TableName,
        path: String,
        format: Option<String>,
        max_reject_ratio: Option<f64>,
    },
    /// `VACUUM raw.t [RETAIN n HOURS] [DRY RUN]`
    Vacuum {
        table: TableName,
        retain_hours: Option<u64>,
        dry_run: bool,
    },
    /// `OPTIMIZE raw.t [ZORDER BY (a, b)]`
    Optimize {
        table: TableName,
        zorder: Vec<String>,
    },
}

/// Recognises the custom statements; `None` for anything else.
pub(crate) fn parse_custom(sql: &str, default_zone: &str) -> Result<Option<Custom>> {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if !matches!(first.as_str(), "COPY" | "VACUUM" | "OPTIMIZE") {
        return Ok(None);
    }
    let tokens = tokenize(sql)?;
    let mut it = tokens.iter().skip(1).peekable();
    match first.as_str() {
        "COPY" => {
            let table_token = it.next();
            if !is(it.peek().copied(), "FROM") {
                // COPY … TO is DataFusion's own.
                return Ok(None);
            }
            let table = table_name(table_token, default_zone)?;
            it.next();
            let path = it
                .next()
                .filter(|t| t.starts_with('\''))
                .map(|t| t[1..].to_string())
                .ok_or_else(|| Error::Syntax("COPY … FROM expects a quoted path".into()))?;
            let mut format = None;
            let mut max_reject_ratio = None;
            if it.peek().is_some_and(|t| *t == "(") {
                it.next();
                loop {
                    let Some(key) = it.next() else {
                        return Err(Error::Syntax("unclosed COPY options".into()));
                    };
                    if key == ")" {
                        break;
                    }
                    if key == "," {
                        continue;
                    }
                    let mut value = it
                        .next()
                        .ok_or_else(|| Error::Syntax(format!("COPY option {key} needs a value")))?;
                    if value == "=" {
                        value = it.next().ok_or_else(|| {
                            Error::Syntax(format!("COPY option {key} needs a value"))
                        })?;
                    }
                    let value = value.trim_start_matches('\'').to_string();
                    match key.to_ascii_uppercase().as_str() {
                        "FORMAT" => format = Some(value.to_ascii_lowercase()),
                        "HEADER" => {
                            if !value.eq_ignore_ascii_case("true") {
                                return Err(Error::Unsupported(
                                    "CSV files without a header row (HEADER false)".into(),
                                ));
                            }
                        }
                        "MAX_REJECT_RATIO" => {
                            max_reject_ratio = Some(value.parse().map_err(|_| {
                                Error::Syntax(
                                    "MAX_REJECT_RATIO expects a number such as 0.01".into(),
                                )
                            })?)
                        }
                        other => return Err(Error::Syntax(format!("unknown COPY option {other}"))),
                    }
                }
            }
            if let Some(extra) = it.next() {
                return Err(Error::Syntax(format!("unexpected '{extra}' after COPY")));
            }
            Ok(Some(Custom::CopyFrom {
                table,
                path,
                format,
                max_reject_ratio,
            }))
        }
        "VACUUM" => {
            let table = table_name(it.next(), default_zone)?;
            let mut retain_hours = None;
            let mut dry_run = false;
            while let Some(word) = it.next() {
                match word.to_ascii_uppercase().as_str() {
                    "RETAIN" => {
                        let hours = it.next().and_then(|h| h.parse().ok()).ok_or_else(|| {
                            Error::Syntax("RETAIN expects a number of hours".into())
                        })?;
                        if !is(it.next(), "HOURS") {
                            return Err(Error::Syntax("expected RETAIN <n> HOURS".into()));
                        }
                        retain_hours = Some(hours);
                    }
                    "DRY" if is(it.next(), "RUN") => dry_run = true,
                    other => return Err(Error::Syntax(format!("unexpected '{other}' in VACUUM"))),
                }
            }
            Ok(Some(Custom::Vacuum {
                table,
                retain_hours,
                dry_run,
            }))
        }
        _ => {
            let table = table_name(it.next(), default_zone)?;
            let mut zorder = Vec::new();
            if let Some(word) = it.next() {
                if !(word.eq_ignore_ascii_case("ZORDER") && is(it.next(), "BY")) {
                    return Err(Error::Syntax(format!("unexpected '{word}' in OPTIMIZE")));
                }
                for token in it {
                    if !matches!(token.as_str(), "(" | ")" | ",") {
                        zorder.push(token.to_ascii_lowercase());
                    }
                }
                if zorder.is_empty() {
                    return Err(Error::Syntax("ZORDER BY expects columns".into()));
                }
            }
            Ok(Some(Custom::Optimize { table, zorder }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each statement form a session parses itself, and some SQL for DataFusion.
    const SEEDS: &[&str] = &[
        "CREATE ROLE analyst",
        "GRANT SELECT (a, \"b c\") ON raw.t TO analyst",
        "REVOKE ALL PRIVILEGES ON raw.* FROM analyst",
        "grant analyst, auditor to alice",
        "ALTER USER alice SET facility = 'F01'",
        "CREATE ROW POLICY f01 ON curated.encounters FOR clinician USING (facility_id = current_user_attr('facility') AND (x IN (SELECT y FROM raw.m)))",
        "CREATE MASKING POLICY ssn ON curated.patients (ssn) FOR analyst USING (mask_last4(ssn))",
        "SHOW POLICIES ON curated.patients",
        "CREATE ALERT s AS SELECT 1 EVERY '5 minutes' NOTIFY SLACK 'https://hooks.example/T1'",
        "DROP ALERT IF EXISTS a",
        "CREATE MATERIALIZED VIEW analytics.v AS SELECT 'x;y' AS r REFRESH EVERY '1 hour'",
        "REFRESH MATERIALIZED VIEW analytics.daily",
        "CREATE MODEL m FROM (SELECT a, b, y FROM raw.t) TARGET y",
        "EVALUATE MODEL m ON (SELECT 1)",
        "COPY raw.t FROM 'claims.csv' (FORMAT csv, MAX_REJECT_RATIO 0.01)",
        "VACUUM raw.t RETAIN 168 HOURS DRY RUN",
        "OPTIMIZE raw.t ZORDER BY (a, b)",
        "SELECT current_user(), count(*) FROM raw.t WHERE a = 'it''s' GROUP BY 1",
        "MERGE INTO raw.t USING raw.s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        /// The statement parsers refuse what they cannot read with an error, never a panic,
        /// whatever the text (CI's short version of the `parse_sql` fuzz target).
        #[test]
        fn statement_parsers_never_panic_on_any_text(script in "\\PC{0,120}") {
            let _ = check_script(&script);
        }

        #[test]
        fn statement_parsers_never_panic_on_damaged_statements(
            seed in 0..SEEDS.len(),
            at in 0usize..200,
            cut in 0usize..12,
            insert in "[ (),;'\"a-zA-Z0-9_.*=-]{0,6}",
        ) {
            let text = SEEDS[seed];
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let end = (at + cut).min(chars.len());
            let damaged: String = chars[..at]
                .iter()
                .copied()
                .chain(insert.chars())
                .chain(chars[end..].iter().copied())
                .collect();
            let _ = check_script(&damaged);
        }
    }

    #[test]
    fn every_seed_statement_parses() {
        for seed in SEEDS {
            assert_eq!(
                check_script(seed).unwrap_or_else(|e| panic!("{seed}: {e}")),
                1
            );
        }
    }

    #[test]
    fn spells_identity_calls_as_sql_does() {
        assert_eq!(
            normalize_identity_calls("SELECT current_user(), Session_User ( ) , 'current_user()'"),
            "SELECT current_user, Session_User , 'current_user()'"
        );
        assert_eq!(
            normalize_identity_calls("my_current_user()"),
            "my_current_user()"
        );
    }

    #[test]
    fn splits_scripts() {
        let parts = split_statements("select 1; select ';' -- a; comment\n; ; select 2");
        assert_eq!(parts, vec!["select 1", "select ';'", "select 2"]);
        // Block comments (nested too), dollar quotes, quoted identifiers and text that is not
        // ASCII: no split inside any of them, and the statements keep their text.
        let parts = split_statements(
            "/* a; /* b; */ c; */ SELECT 'é;ü' AS \"x;y\";\nSELECT $$ a; b $$, $t$;$t$ ; -- é;\nSELECT 3",
        );
        assert_eq!(
            parts,
            vec![
                "SELECT 'é;ü' AS \"x;y\"",
                "SELECT $$ a; b $$, $t$;$t$",
                "SELECT 3"
            ]
        );
        // Unreadable: one statement, so that its parse fails and nothing of it runs.
        assert_eq!(
            split_statements("SELECT 1; SELECT 'open"),
            vec!["SELECT 1; SELECT 'open"]
        );
        assert!(split_statements(" ;; -- nothing\n").is_empty());
    }

    #[test]
    fn parses_custom_statements() {
        let copy = parse_custom(
            "COPY raw.t FROM '/tmp/a b.csv' (FORMAT csv, HEADER true)",
            "raw",
        )
        .unwrap();
        assert_eq!(
            copy,
            Some(Custom::CopyFrom {
                table: "raw.t".parse().unwrap(),
                path: "/tmp/a b.csv".into(),
                format: Some("csv".into()),
                max_reject_ratio: None
            })
        );
        assert_eq!(parse_custom("COPY raw.t TO 'x.csv'", "raw").unwrap(), None);
        assert_eq!(
            parse_custom("vacuum raw.t retain 0 hours dry run", "raw").unwrap(),
            Some(Custom::Vacuum {
                table: "raw.t".parse().unwrap(),
                retain_hours: Some(0),
                dry_run: true
            })
        );
        assert_eq!(
            parse_custom("OPTIMIZE curated.x ZORDER BY (a, b)", "raw").unwrap(),
            Some(Custom::Optimize {
                table: "curated.x".parse().unwrap(),
                zorder: vec!["a".into(), "b".into()]
            })
        );
        assert!(parse_custom("OPTIMIZE raw.t please", "raw").is_err());
        assert_eq!(parse_custom("SELECT 1", "raw").unwrap(), None);
    }
}
