//! Governance statements: roles, privileges, row and masking policies, user attributes.
//!
//! ```sql
//! CREATE ROLE analyst;                       DROP ROLE analyst;
//! GRANT analyst TO alice;                    REVOKE analyst FROM alice;
//! GRANT SELECT ON curated.* TO analyst;      GRANT SELECT (person_key, zip) ON curated.patients TO analyst;
//! GRANT INSERT, UPDATE ON raw.notes TO nurse; REVOKE ALL ON raw.notes FROM nurse;
//! SHOW GRANTS;  SHOW GRANTS FOR alice;  SHOW ROLES;
//! CREATE ROW POLICY f01 ON curated.encounters FOR clinician
//!     USING (facility_id = current_user_attr('facility'));
//! CREATE MASKING POLICY ssn ON curated.patients (ssn) FOR analyst USING (mask_last4(ssn));
//! DROP ROW POLICY f01;  DROP MASKING POLICY ssn;  SHOW POLICIES [ON curated.patients];
//! ALTER USER alice SET facility = 'F01';     ALTER USER alice RESET facility;
//! ```

use std::collections::BTreeSet;

use carelake_lake::{Privilege, Securable, check_role_name};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::statement::tokenize;
use crate::{Error, Result};

/// A governance statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Governed {
    CreateRole(String),
    DropRole(String),
    GrantRoles {
        roles: Vec<String>,
        user: String,
    },
    RevokeRoles {
        roles: Vec<String>,
        user: String,
    },
    Grant {
        privileges: Vec<(Privilege, Option<BTreeSet<String>>)>,
        on: Securable,
        role: String,
        revoke: bool,
    },
    ShowGrants(Option<String>),
    ShowRoles,
    CreateRowPolicy {
        name: String,
        table: Securable,
        role: String,
        predicate: String,
    },
    CreateMask {
        name: String,
        table: Securable,
        column: String,
        role: String,
        expression: String,
    },
    DropRowPolicy(String),
    DropMask(String),
    ShowPolicies(Option<Securable>),
    SetAttribute {
        user: String,
        key: String,
        value: Option<String>,
    },
}

fn word(tokens: &[String], i: usize) -> String {
    tokens
        .get(i)
        .map(|t| t.to_ascii_uppercase())
        .unwrap_or_default()
}

fn name_at(tokens: &[String], i: usize, what: &str) -> Result<String> {
    let t = tokens
        .get(i)
        .ok_or_else(|| Error::Syntax(format!("expected {what}")))?;
    let name = t.replace('"', "").to_ascii_lowercase();
    if name.starts_with('\'') || "(),=".contains(name.as_str()) {
        return Err(Error::Syntax(format!("expected {what}")));
    }
    Ok(name)
}

/// The text after the keyword `USING`, without its outer parentheses, checked to be one SQL
/// expression.
fn using_expression(sql: &str) -> Result<String> {
    let upper = sql.to_ascii_uppercase();
    let at = upper
        .match_indices("USING")
        .find(|(i, _)| {
            let before = upper[..*i]
                .chars()
                .last()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            let after = upper[i + 5..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            before && after
        })
        .map(|(i, _)| i)
        .ok_or_else(|| Error::Syntax("expected USING (expression)".into()))?;
    let rest = sql[at + 5..].trim().trim_end_matches(';').trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| Error::Syntax("expected USING (expression) in parentheses".into()))?
        .trim();
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(inner)
        .map_err(|e| Error::Syntax(format!("the USING expression: {e}")))?;
    parser
        .parse_expr()
        .map_err(|e| Error::Syntax(format!("the USING expression: {e}")))?;
    if parser.peek_token().token != datafusion::sql::sqlparser::tokenizer::Token::EOF {
        return Err(Error::Syntax(
            "the USING expression: one expression in parentheses".into(),
        ));
    }
    Ok(inner.to_string())
}

/// Recognises a governance statement; `None` for anything else.
pub(crate) fn parse_governed(sql: &str) -> Result<Option<Governed>> {
    let head: Vec<String> = sql
        .split_whitespace()
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let recognised = matches!(
        head.as_slice(),
        ["CREATE", "ROLE", ..]
            | ["DROP", "ROLE", ..]
            | ["GRANT", ..]
            | ["REVOKE", ..]
            | ["SHOW", "GRANTS", ..]
            | ["SHOW", "ROLES", ..]
            | ["SHOW", "POLICIES", ..]
            | ["CREATE", "ROW", ..]
            | ["CREATE", "MASKING", ..]
            | ["CREATE", "OR", "REPLACE"]
            | ["DROP", "ROW", ..]
            | ["DROP", "MASKING", ..]
            | ["ALTER", "USER", ..]
    );
    if !recognised {
        return Ok(None);
    }
    // `CREATE OR REPLACE` is a governance statement only for policies.
    if head.as_slice() == ["CREATE", "OR", "REPLACE"] {
        let fourth = sql
            .split_whitespace()
            .nth(3)
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        if fourth != "ROW" && fourth != "MASKING" {
            return Ok(None);
        }
    }
    let head_end = sql.to_ascii_uppercase().find(" USING").unwrap_or(sql.len());
    let tokens = tokenize(&sql[..head_end])?;
    let t = |i: usize| word(&tokens, i);
    let statement = match (t(0).as_str(), t(1).as_str()) {
        ("CREATE", "ROLE") => {
            let role = name_at(&tokens, 2, "a role name")?;
            check_role_name(&role)?;
            Governed::CreateRole(role)
        }
        ("DROP", "ROLE") => Governed::DropRole(name_at(&tokens, 2, "a role name")?),
        ("SHOW", "GRANTS") => match t(2).as_str() {
            "" => Governed::ShowGrants(None),
            "FOR" => Governed::ShowGrants(Some(name_at(&tokens, 3, "a user name")?)),
            other => {
                return Err(Error::Syntax(format!(
                    "unexpected '{other}' in SHOW GRANTS"
                )));
            }
        },
        ("SHOW", "ROLES") => Governed::ShowRoles,
        ("SHOW", "POLICIES") => match t(2).as_str() {
            "" => Governed::ShowPolicies(None),
            "ON" => {
                Governed::ShowPolicies(Some(Securable::parse(&name_at(&tokens, 3, "a table")?)?))
            }
            other => {
                return Err(Error::Syntax(format!(
                    "unexpected '{other}' in SHOW POLICIES"
                )));
            }
        },
        ("GRANT", _) | ("REVOKE", _) => parse_grant(&tokens)?,
        ("CREATE", _) => {
            let mut i = 1;
            if t(1) == "OR" && t(2) == "REPLACE" {
                i = 3;
            }
            let kind = t(i);
            if t(i + 1) != "POLICY" {
                return Err(Error::Syntax(format!("expected CREATE {kind} POLICY")));
            }
            let name = name_at(&tokens, i + 2, "a policy name")?;
            check_role_name(&name)?;
            if t(i + 3) != "ON" {
                return Err(Error::Syntax("expected ON zone.table".into()));
            }
            let table = Securable::parse(&name_at(&tokens, i + 4, "a table")?)?;
            if table.table.is_none() || table.schema == "system" {
                return Err(Error::Syntax(
                    "a policy is on one table of a zone (zone.table)".into(),
                ));
            }
            let mut j = i + 5;
            let column = if kind == "MASKING" {
                if tokens.get(j).map(String::as_str) != Some("(")
                    || tokens.get(j + 2).map(String::as_str) != Some(")")
                {
                    return Err(Error::Syntax(
                        "expected the masked column in parentheses: ON zone.table (column)".into(),
                    ));
                }
                let column = name_at(&tokens, j + 1, "a column")?;
                j += 3;
                Some(column)
            } else if kind == "ROW" {
                None
            } else {
                return Err(Error::Syntax(
                    "CREATE ROW POLICY or CREATE MASKING POLICY".into(),
                ));
            };
            if t(j) != "FOR" {
                return Err(Error::Syntax("expected FOR role".into()));
            }
            let role = name_at(&tokens, j + 1, "a role")?;
            if tokens.len() > j + 2 {
                return Err(Error::Syntax(format!(
                    "unexpected '{}' before USING",
                    tokens[j + 2]
                )));
            }
            let expression = using_expression(sql)?;
            match column {
                Some(column) => Governed::CreateMask {
                    name,
                    table,
                    column,
                    role,
                    expression,
                },
                None => Governed::CreateRowPolicy {
                    name,
                    table,
                    role,
                    predicate: expression,
                },
            }
        }
        ("DROP", "ROW") | ("DROP", "MASKING") => {
            if t(2) != "POLICY" {
                return Err(Error::Syntax("expected DROP … POLICY name".into()));
            }
            let name = name_at(&tokens, 3, "a policy name")?;
            if t(1) == "ROW" {
                Governed::DropRowPolicy(name)
            } else {
                Governed::DropMask(name)
            }
        }
        ("ALTER", "USER") => {
            let user = name_at(&tokens, 2, "a user name")?;
            let key = name_at(&tokens, 4, "an attribute name")?;
            check_role_name(&key)?;
            match t(3).as_str() {
                "SET" => {
                    if tokens.get(5).map(String::as_str) != Some("=") {
                        return Err(Error::Syntax("expected SET name = 'value'".into()));
                    }
                    let value = tokens
                        .get(6)
                        .filter(|v| v.starts_with('\''))
                        .map(|v| v[1..].to_string())
                        .ok_or_else(|| Error::Syntax("the value is a quoted string".into()))?;
                    Governed::SetAttribute {
                        user,
                        key,
                        value: Some(value),
                    }
                }
                "RESET" => Governed::SetAttribute {
                    user,
                    key,
                    value: None,
                },
                _ => {
                    return Err(Error::Syntax(
                        "ALTER USER name SET attribute = 'value' | RESET attribute".into(),
                    ));
                }
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(statement))
}

/// `GRANT|REVOKE privileges ON object TO|FROM role`, or `GRANT|REVOKE roles TO|FROM user`.
fn parse_grant(tokens: &[String]) -> Result<Governed> {
    let revoke = word(tokens, 0) == "REVOKE";
    let target_word = if revoke { "FROM" } else { "TO" };
    let on = tokens.iter().position(|t| t.eq_ignore_ascii_case("ON"));
    let target = tokens
        .iter()
        .position(|t| t.eq_ignore_ascii_case(target_word))
        .ok_or_else(|| Error::Syntax(format!("expected {target_word}")))?;
    let grantee = name_at(tokens, target + 1, "a role or user name")?;
    if tokens.len() > target + 2 {
        return Err(Error::Syntax(format!(
            "unexpected '{}' after {target_word} {grantee}",
            tokens[target + 2]
        )));
    }
    let Some(on) = on.filter(|on| *on < target) else {
        // Roles to a user.
        let roles: Vec<String> = tokens[1..target]
            .iter()
            .filter(|t| *t != ",")
            .map(|t| t.replace('"', "").to_ascii_lowercase())
            .collect();
        if roles.is_empty() {
            return Err(Error::Syntax("expected a role".into()));
        }
        return Ok(if revoke {
            Governed::RevokeRoles {
                roles,
                user: grantee,
            }
        } else {
            Governed::GrantRoles {
                roles,
                user: grantee,
            }
        });
    };
    let object = Securable::parse(&name_at(tokens, on + 1, "zone.table or zone.*")?)?;
    if on + 2 != target {
        return Err(Error::Syntax(format!(
            "unexpected '{}' after ON {object}",
            tokens[on + 2]
        )));
    }
    let mut privileges = Vec::new();
    let mut i = 1;
    while i < on {
        let w = word(tokens, i);
        i += 1;
        match w.as_str() {
            "," | "PRIVILEGES" => continue,
            "ALL" => privileges.extend(Privilege::ALL.into_iter().map(|p| (p, None))),
            other => {
                let privilege: Privilege = other.parse()?;
                let mut columns = None;
                if tokens.get(i).map(String::as_str) == Some("(") {
                    let close = tokens[i..]
                        .iter()
                        .position(|t| t == ")")
                        .map(|p| p + i)
                        .filter(|c| *c < on)
                        .ok_or_else(|| Error::Syntax("unclosed column list".into()))?;
                    let set: BTreeSet<String> = tokens[i + 1..close]
                        .iter()
                        .filter(|t| *t != ",")
                        .map(|t| t.replace('"', "").to_ascii_lowercase())
                        .collect();
                    if set.is_empty() {
                        return Err(Error::Syntax("an empty column list".into()));
                    }
                    if privilege != Privilege::Select {
                        return Err(Error::Unsupported(
                            "column lists for privileges other than SELECT".into(),
                        ));
                    }
                    columns = Some(set);
                    i = close + 1;
                }
                privileges.push((privilege, columns));
            }
        }
    }
    if privileges.is_empty() {
        return Err(Error::Syntax("expected a privilege".into()));
    }
    if columns_on_zone(&privileges, &object) {
        return Err(Error::Syntax(
            "a column list names columns of one table, not of zone.*".into(),
        ));
    }
    Ok(Governed::Grant {
        privileges,
        on: object,
        role: grantee,
        revoke,
    })
}

fn columns_on_zone(privileges: &[(Privilege, Option<BTreeSet<String>>)], on: &Securable) -> bool {
    on.table.is_none() && privileges.iter().any(|(_, c)| c.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grants() {
        let g = parse_governed("GRANT SELECT (a, \"B\"), INSERT ON curated.patients TO analyst")
            .unwrap()
            .unwrap();
        let Governed::Grant {
            privileges,
            on,
            role,
            revoke,
        } = g
        else {
            panic!("{g:?}")
        };
        assert_eq!(role, "analyst");
        assert!(!revoke);
        assert_eq!(on.to_string(), "curated.patients");
        assert_eq!(privileges.len(), 2);
        assert_eq!(
            privileges[0].1.as_ref().unwrap().iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(
            parse_governed("grant analyst, auditor to alice").unwrap(),
            Some(Governed::GrantRoles {
                roles: vec!["analyst".into(), "auditor".into()],
                user: "alice".into()
            })
        );
        assert!(matches!(
            parse_governed("REVOKE ALL PRIVILEGES ON raw.* FROM analyst").unwrap(),
            Some(Governed::Grant { revoke: true, .. })
        ));
        assert!(parse_governed("GRANT SELECT (a) ON raw.* TO x").is_err());
        assert!(parse_governed("GRANT SELECT ON patients TO x").is_err());
        assert_eq!(parse_governed("SELECT 1").unwrap(), None);
        assert_eq!(
            parse_governed("CREATE OR REPLACE TABLE raw.t AS SELECT 1").unwrap(),
            None
        );
    }

    #[test]
    fn parses_policies() {
        assert_eq!(
            parse_governed(
                "CREATE ROW POLICY f01 ON curated.encounters FOR clinician USING (facility_id = current_user_attr('facility') AND (x IN (SELECT y FROM raw.m)))"
            )
            .unwrap(),
            Some(Governed::CreateRowPolicy {
                name: "f01".into(),
                table: Securable::parse("curated.encounters").unwrap(),
                role: "clinician".into(),
                predicate: "facility_id = current_user_attr('facility') AND (x IN (SELECT y FROM raw.m))".into()
            })
        );
        assert_eq!(
            parse_governed(
                "create masking policy ssn_mask on curated.patients (ssn) for analyst using (mask_last4(ssn))"
            )
            .unwrap(),
            Some(Governed::CreateMask {
                name: "ssn_mask".into(),
                table: Securable::parse("curated.patients").unwrap(),
                column: "ssn".into(),
                role: "analyst".into(),
                expression: "mask_last4(ssn)".into()
            })
        );
        assert!(parse_governed("CREATE ROW POLICY p ON raw.t FOR r USING (a = 1) OR 1=1").is_err());
        assert!(parse_governed("CREATE ROW POLICY p ON raw.t FOR r USING (a = )").is_err());
        assert_eq!(
            parse_governed("ALTER USER alice SET facility = 'F01'").unwrap(),
            Some(Governed::SetAttribute {
                user: "alice".into(),
                key: "facility".into(),
                value: Some("F01".into())
            })
        );
    }
}
