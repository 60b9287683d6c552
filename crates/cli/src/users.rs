//! `carelake user`: the lake's users, and the first one made at `init` and `demo`.

use anyhow::{Context, Result};
use carelake_common::Principal;
use carelake_lake::{ADMIN_ROLE, FIRST_USER, Lake};
use clap::Subcommand;

/// The environment variable holding a password (the first user's at `init`, or the one
/// `user add` and `user password` set), so that it never appears in a command line.
pub(crate) const PASSWORD_ENV: &str = "CARELAKE_PASSWORD";

/// `carelake user …`
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// List the users, their roles and whether they are disabled.
    List,
    /// Add a user; the password comes from CARELAKE_PASSWORD or is generated and shown once.
    Add {
        /// Login name: lower-case letters, digits, '_', '-' and '.'.
        name: String,
        /// Roles, comma-separated (admin may do everything; others are made with
        /// `CREATE ROLE`).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Attributes that row policies read with current_user_attr('key'): key=value,
        /// repeated.
        #[arg(long = "attr")]
        attrs: Vec<String>,
    },
    /// Set a user's attributes (key=value; key= removes one).
    Attr {
        /// Login name.
        name: String,
        /// key=value pairs.
        #[arg(required = true)]
        attrs: Vec<String>,
    },
    /// Set the roles a user holds (replacing the ones held before).
    Roles {
        /// Login name.
        name: String,
        /// Roles, comma-separated (none: an empty string).
        #[arg(value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// Set a user's password from CARELAKE_PASSWORD, or generate one and show it once.
    Password {
        /// Login name.
        name: String,
    },
    /// Stop a user from signing in.
    Disable {
        /// Login name.
        name: String,
    },
    /// Let a disabled user sign in again.
    Enable {
        /// Login name.
        name: String,
    },
    /// Lift the lock-out of an account locked after repeated failed sign-ins.
    Unlock {
        /// Login name.
        name: String,
    },
    /// End every session of a user on every interface: bearer tokens, web UI sessions, open
    /// Postgres connections and remembered passwords (a running server notices within about a
    /// second). The user may sign in again.
    Revoke {
        /// Login name.
        name: String,
    },
}

/// `carelake token …`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// List bearer tokens and web UI sessions (never the tokens themselves): id, user, kind,
    /// issued, expires, state.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Also expired, revoked and void ones.
        #[arg(long)]
        all: bool,
    },
    /// Revoke tokens by id (as `token list` shows them), or every token of a user.
    Revoke {
        /// Token ids.
        ids: Vec<String>,
        /// Every token and session of this user.
        #[arg(long, conflicts_with = "ids")]
        user: Option<String>,
    },
}

pub(crate) async fn tokens(
    lake_location: &str,
    principal: Principal,
    which: TokenCommand,
) -> Result<()> {
    let lake = Lake::open(lake_location).await?;
    let users: std::collections::HashMap<String, carelake_lake::User> = lake
        .users()
        .list()
        .await?
        .into_iter()
        .map(|u| (u.name.clone(), u))
        .collect();
    let now = chrono::Utc::now();
    let all = lake.tokens().list().await?;
    match which {
        TokenCommand::List { user, all: every } => {
            let mut rows = Vec::new();
            for t in all
                .iter()
                .filter(|t| user.as_deref().is_none_or(|u| t.user == u))
            {
                let state = t.state(users.get(&t.user), now);
                if !every && state != "active" {
                    continue;
                }
                rows.push(vec![
                    t.id.clone(),
                    t.user.clone(),
                    t.kind.as_str().to_string(),
                    t.issued_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    t.expires_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    state.to_string(),
                ]);
            }
            crate::list::print(&["id", "user", "kind", "issued", "expires", "state"], rows);
        }
        TokenCommand::Revoke { ids, user } => {
            let ids: Vec<String> = match &user {
                Some(name) => {
                    if !users.contains_key(name) {
                        anyhow::bail!("no user {name}");
                    }
                    all.iter()
                        .filter(|t| &t.user == name && t.revoked_at.is_none())
                        .map(|t| t.id.clone())
                        .collect()
                }
                None if ids.is_empty() => anyhow::bail!("name token ids, or --user NAME"),
                None => ids,
            };
            let unknown = lake.tokens().revoke(&ids, &principal).await?;
            if !unknown.is_empty() {
                anyhow::bail!("no token {}", unknown.join(", "));
            }
            audit_user(
                &lake,
                &principal,
                &format!("token revoke ({} token(s))", ids.len()),
            )
            .await?;
            println!("{} token(s) revoked.", ids.len());
        }
    }
    Ok(())
}

/// The password from the environment, or a generated one (and whether it was generated).
fn password_from_env() -> (String, bool) {
    match std::env::var(PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (carelake_lake::generate_password(), true),
    }
}

/// Makes the lake's first user when it has none, showing a generated password once.
pub(crate) async fn ensure_first_user(lake: &Lake) -> Result<()> {
    if !lake.users().list().await?.is_empty() {
        return Ok(());
    }
    let given = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
    match lake
        .users()
        .ensure_first_user(given.as_deref())
        .await
        .context("creating the first user")?
    {
        Some(generated) => println!(
            "   User {FIRST_USER} (admin) created. Its password, shown only this once:\n\n       {generated}\n\n   (set {PASSWORD_ENV} before `carelake init` to choose it; change it with `carelake user password {FIRST_USER}`)"
        ),
        None => {
            println!("   User {FIRST_USER} (admin) created with the password in {PASSWORD_ENV}.")
        }
    }
    Ok(())
}

pub(crate) async fn run(
    lake_location: &str,
    principal: Principal,
    which: UserCommand,
) -> Result<()> {
    let lake = Lake::open(lake_location).await?;
    let users = lake.users();
    match which {
        UserCommand::List => {
            let mut rows = Vec::new();
            for user in users.list().await? {
                let state = if user.disabled {
                    "disabled".to_string()
                } else if let Some(at) = user.locked_at {
                    format!("locked since {}", at.format("%Y-%m-%d %H:%M:%S UTC"))
                } else {
                    "active".to_string()
                };
                rows.push(vec![user.name, user.roles.join(","), state]);
            }
            crate::list::print(&["user", "roles", "state"], rows);
        }
        UserCommand::Add { name, roles, attrs } => {
            let (password, generated) = password_from_env();
            let roles: Vec<String> = roles.into_iter().filter(|r| !r.is_empty()).collect();
            check_roles(&lake, &roles).await?;
            let attributes = parse_attrs(&name, &attrs)?;
            users.create(&name, &password, &roles, &principal).await?;
            set_attrs(&lake, &principal, attributes).await?;
            audit_user(&lake, &principal, &format!("user add {name}")).await?;
            println!(
                "User {name} added{}.",
                if roles.iter().any(|r| r == ADMIN_ROLE) {
                    " (admin)"
                } else {
                    ""
                }
            );
            if generated {
                println!("Its password, shown only this once:\n\n    {password}\n");
            }
        }
        UserCommand::Password { name } => {
            let (password, generated) = password_from_env();
            users.set_password(&name, &password, &principal).await?;
            audit_user(&lake, &principal, &format!("user password {name}")).await?;
            println!("Password of {name} changed.");
            if generated {
                println!("The new password, shown only this once:\n\n    {password}\n");
            }
        }
        UserCommand::Attr { name, attrs } => {
            if users.get(&name).await?.is_none() {
                anyhow::bail!("no user {name}");
            }
            let attributes = parse_attrs(&name, &attrs)?;
            let n = attributes.len();
            set_attrs(&lake, &principal, attributes).await?;
            audit_user(&lake, &principal, &format!("user attr {name}")).await?;
            println!("{n} attribute(s) of {name} set.");
        }
        UserCommand::Roles { name, roles } => {
            let roles: Vec<String> = roles.into_iter().filter(|r| !r.is_empty()).collect();
            check_roles(&lake, &roles).await?;
            users.set_roles(&name, &roles, &principal).await?;
            audit_user(&lake, &principal, &format!("user roles {name}")).await?;
            println!(
                "{name} holds: {}.",
                if roles.is_empty() {
                    "no role".to_string()
                } else {
                    roles.join(", ")
                }
            );
        }
        UserCommand::Disable { name } => {
            users.set_disabled(&name, true, &principal).await?;
            audit_user(&lake, &principal, &format!("user disable {name}")).await?;
            println!("User {name} disabled.");
        }
        UserCommand::Enable { name } => {
            users.set_disabled(&name, false, &principal).await?;
            audit_user(&lake, &principal, &format!("user enable {name}")).await?;
            println!("User {name} enabled.");
        }
        UserCommand::Unlock { name } => {
            users.set_locked(&name, false, &principal).await?;
            audit_user(&lake, &principal, &format!("user unlock {name}")).await?;
            println!("User {name} unlocked.");
        }
        UserCommand::Revoke { name } => {
            users.revoke_sessions(&name, &principal).await?;
            audit_user(&lake, &principal, &format!("user revoke {name}")).await?;
            println!("Every session and token of {name} ended.");
        }
    }
    Ok(())
}

/// Refuses roles that do not exist (the built-in ones, or made with `CREATE ROLE`).
async fn check_roles(lake: &Lake, roles: &[String]) -> Result<()> {
    let governance = lake.governance().load().await?;
    if let Some(missing) = roles.iter().find(|r| !governance.role_exists(r)) {
        anyhow::bail!(
            "no role {missing}: create it with `carelake sql \"CREATE ROLE {missing}\"` first"
        );
    }
    Ok(())
}

/// `key=value` pairs as attribute events of `user` (`key=` removes one).
fn parse_attrs(user: &str, attrs: &[String]) -> Result<Vec<carelake_lake::GovernanceEvent>> {
    attrs
        .iter()
        .map(|a| {
            let (key, value) = a
                .split_once('=')
                .with_context(|| format!("'{a}' is not key=value"))?;
            let key = key.trim().to_ascii_lowercase();
            carelake_lake::check_role_name(&key)?;
            Ok(carelake_lake::GovernanceEvent::SetAttribute {
                user: user.to_string(),
                key,
                value: (!value.is_empty()).then(|| value.to_string()),
            })
        })
        .collect()
}

async fn set_attrs(
    lake: &Lake,
    principal: &Principal,
    events: Vec<carelake_lake::GovernanceEvent>,
) -> Result<()> {
    lake.governance().record(&events, principal).await?;
    Ok(())
}

/// A user change in the audit log (the command, never a password).
async fn audit_user(lake: &Lake, principal: &Principal, what: &str) -> Result<()> {
    let mut record = carelake_lake::AuditRecord::new(principal.name.clone(), "cli", "user");
    record.statement = Some(format!("carelake {what}"));
    lake.audit_append(vec![record]).await?;
    Ok(())
}
