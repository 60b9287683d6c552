//! The model statements:
//!
//! ```sql
//! CREATE [OR REPLACE] MODEL name FROM (query) TARGET column [TYPE logistic | gbdt]
//!     [OPTIONS (split_by = 'person_key', test_fraction = 0.3, seed = 42, threshold = 0.2,
//!               budget = 0.5, l2 = 1.0, max_iterations = 200)]
//! SHOW MODELS
//! DROP MODEL [IF EXISTS] name
//! EVALUATE MODEL name [ON (query)]
//! EXPLAIN MODEL name
//! ```

use std::collections::BTreeMap;

use crate::{Error, Result};

/// A model statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ModelStatement {
    Create {
        name: String,
        or_replace: bool,
        query: String,
        target: String,
        kind: Option<String>,
        options: BTreeMap<String, String>,
    },
    Show,
    Drop {
        name: String,
        if_exists: bool,
    },
    Evaluate {
        name: String,
        query: Option<String>,
    },
    Explain {
        name: String,
    },
}

/// Words and parenthesised groups of a statement, quotes respected.
struct Cursor<'a> {
    sql: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        while let Some(c) = self.sql[self.at..].chars().next() {
            if c.is_whitespace() {
                self.at += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn done(&mut self) -> bool {
        self.skip_space();
        self.at >= self.sql.len()
    }

    /// The next word (letters, digits, `_`, `.`, `"`), upper-cased for keywords by the caller.
    fn word(&mut self) -> Option<&'a str> {
        self.skip_space();
        let rest = &self.sql[self.at..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '"'))
            .unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        self.at += len;
        Some(&rest[..len])
    }

    fn keyword(&mut self, expected: &str) -> bool {
        let save = self.at;
        if self
            .word()
            .is_some_and(|w| w.eq_ignore_ascii_case(expected))
        {
            true
        } else {
            self.at = save;
            false
        }
    }

    fn expect(&mut self, expected: &str) -> Result<()> {
        if self.keyword(expected) {
            Ok(())
        } else {
            Err(Error::Syntax(format!(
                "expected {expected} in a model statement"
            )))
        }
    }

    /// The text inside the parentheses that come next, without them.
    fn group(&mut self) -> Result<&'a str> {
        self.skip_space();
        let rest = &self.sql[self.at..];
        if !rest.starts_with('(') {
            return Err(Error::Syntax("expected '(' in a model statement".into()));
        }
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        for (i, c) in rest.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '\'' | '"' => quote = Some(c),
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            self.at += i + 1;
                            return Ok(&rest[1..i]);
                        }
                    }
                    _ => {}
                },
            }
        }
        Err(Error::Syntax("unclosed '(' in a model statement".into()))
    }
}

/// A model name: lower-case letters, digits and '_', starting with a letter.
fn model_name(word: Option<&str>) -> Result<String> {
    let name = word
        .ok_or_else(|| Error::Syntax("expected a model name".into()))?
        .replace('"', "")
        .to_ascii_lowercase();
    let ok = name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(Error::Syntax(format!(
            "invalid model name {name:?}: lower-case letters, digits and '_', starting with a letter"
        )))
    }
}

/// `key = value, …` inside OPTIONS ( … ); values may be quoted.
fn options(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in crate::statement::split_outside_quotes(text, ',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, value) = part
            .split_once('=')
            .or_else(|| part.split_once(char::is_whitespace))
            .ok_or_else(|| Error::Syntax(format!("model option {part:?}: expected key = value")))?;
        let value = value.trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .map_or_else(|| value.to_string(), |v| v.replace("''", "'"));
        out.insert(key.trim().to_ascii_lowercase(), value);
    }
    Ok(out)
}

fn end(c: &mut Cursor<'_>, what: &str) -> Result<()> {
    if c.done() {
        Ok(())
    } else {
        Err(Error::Syntax(format!(
            "unexpected text after {what}: {}",
            &c.sql[c.at..].chars().take(40).collect::<String>()
        )))
    }
}

/// Recognises a model statement; `None` for anything else.
pub(crate) fn parse_model(sql: &str) -> Result<Option<ModelStatement>> {
    let sql = sql.trim().trim_end_matches(';');
    let mut c = Cursor { sql, at: 0 };
    let first = c.word().map(str::to_ascii_uppercase).unwrap_or_default();
    let statement = match first.as_str() {
        "CREATE" => {
            let or_replace = c.keyword("OR");
            if or_replace {
                c.expect("REPLACE")?;
            }
            if !c.keyword("MODEL") {
                return Ok(None);
            }
            let name = model_name(c.word())?;
            c.expect("FROM")?;
            let query = c.group()?.trim().to_string();
            c.expect("TARGET")?;
            let target = c
                .word()
                .ok_or_else(|| Error::Syntax("expected the target column after TARGET".into()))?
                .replace('"', "");
            let kind = if c.keyword("TYPE") {
                Some(
                    c.word()
                        .ok_or_else(|| {
                            Error::Syntax("expected logistic or gbdt after TYPE".into())
                        })?
                        .to_ascii_lowercase(),
                )
            } else {
                None
            };
            let options = if c.keyword("OPTIONS") {
                options(c.group()?)?
            } else {
                BTreeMap::new()
            };
            end(&mut c, "CREATE MODEL")?;
            ModelStatement::Create {
                name,
                or_replace,
                query,
                target,
                kind,
                options,
            }
        }
        "SHOW" => {
            if !c.keyword("MODELS") {
                return Ok(None);
            }
            end(&mut c, "SHOW MODELS")?;
            ModelStatement::Show
        }
        "DROP" => {
            if !c.keyword("MODEL") {
                return Ok(None);
            }
            let if_exists = c.keyword("IF");
            if if_exists {
                c.expect("EXISTS")?;
            }
            let name = model_name(c.word())?;
            end(&mut c, "DROP MODEL")?;
            ModelStatement::Drop { name, if_exists }
        }
        "EVALUATE" => {
            c.expect("MODEL")?;
            let name = model_name(c.word())?;
            let query = if c.keyword("ON") {
                Some(c.group()?.trim().to_string())
            } else {
                None
            };
            end(&mut c, "EVALUATE MODEL")?;
            ModelStatement::Evaluate { name, query }
        }
        "EXPLAIN" => {
            if !c.keyword("MODEL") {
                return Ok(None);
            }
            let name = model_name(c.word())?;
            end(&mut c, "EXPLAIN MODEL")?;
            ModelStatement::Explain { name }
        }
        _ => return Ok(None),
    };
    Ok(Some(statement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_model_with_everything() {
        let s = parse_model(
            "CREATE OR REPLACE MODEL readmit FROM (SELECT a, b, f(c, ')') AS c, y FROM analytics.t WHERE x IN (1, 2)) \
             TARGET y TYPE GBDT OPTIONS (split_by = 'person_key', seed = 7, threshold = 0.2)",
        )
        .unwrap()
        .unwrap();
        let ModelStatement::Create {
            name,
            or_replace,
            query,
            target,
            kind,
            options,
        } = s
        else {
            panic!("{s:?}")
        };
        assert_eq!(name, "readmit");
        assert!(or_replace);
        assert_eq!(
            query,
            "SELECT a, b, f(c, ')') AS c, y FROM analytics.t WHERE x IN (1, 2)"
        );
        assert_eq!(target, "y");
        assert_eq!(kind.as_deref(), Some("gbdt"));
        assert_eq!(options["split_by"], "person_key");
        assert_eq!(options["seed"], "7");
        assert_eq!(options["threshold"], "0.2");
    }

    #[test]
    fn other_statements() {
        assert_eq!(
            parse_model("SHOW MODELS").unwrap(),
            Some(ModelStatement::Show)
        );
        assert_eq!(
            parse_model("drop model if exists m1;").unwrap(),
            Some(ModelStatement::Drop {
                name: "m1".into(),
                if_exists: true
            })
        );
        assert_eq!(
            parse_model("EVALUATE MODEL m ON (SELECT 1)").unwrap(),
            Some(ModelStatement::Evaluate {
                name: "m".into(),
                query: Some("SELECT 1".into())
            })
        );
        assert_eq!(
            parse_model("EXPLAIN MODEL m").unwrap(),
            Some(ModelStatement::Explain { name: "m".into() })
        );
        // Not model statements.
        assert_eq!(parse_model("CREATE TABLE t AS SELECT 1").unwrap(), None);
        assert_eq!(parse_model("EXPLAIN SELECT 1").unwrap(), None);
        assert_eq!(parse_model("SELECT 1").unwrap(), None);
        // Wrong ones.
        assert!(parse_model("CREATE MODEL m FROM (SELECT 1)").is_err());
        assert!(parse_model("CREATE MODEL m FROM (SELECT 1 TARGET y").is_err());
        assert!(parse_model("CREATE MODEL \"M-1\" FROM (SELECT 1) TARGET y").is_err());
        assert!(parse_model("SHOW MODELS please").is_err());
    }
}
