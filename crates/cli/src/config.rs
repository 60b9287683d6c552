//! Layered configuration: built-in defaults, then a `carelake.toml`, then `CARELAKE_*`
//! variables, then flags, each overriding the one before.
//!
//! The file is `--config FILE`, else `CARELAKE_CONFIG`, else `./carelake.toml` when there is
//! one. It has a `[global]` table for the options every command takes (`lake`, `log`,
//! `key-file`, `key-command`) and a `[serve]` table for the server: every option of `carelake
//! serve` (listeners, TLS, limits, timeouts, schedules, retention of the streamed-event log),
//! named as its flag (`http-listen`, or `http_listen`). An unknown table or key is an error,
//! so a misspelt setting never goes unnoticed. `docs/carelake.example.toml` lists every one.
//!
//! Every server option is also a variable, `CARELAKE_` and its name in capitals
//! (`--max-queries` is `CARELAKE_MAX_QUERIES`), shown by `carelake serve --help`.
//!
//! Built on clap rather than a configuration crate (figment, config): the file only supplies
//! the defaults of clap's own arguments, so the types, the parsing, the help and the order of
//! precedence stay clap's, and no setting exists in one layer but not the others.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Command};

/// The file carelake reads when neither `--config` nor `CARELAKE_CONFIG` names one.
pub(crate) const DEFAULT_FILE: &str = "carelake.toml";

/// The tables a configuration file may have, and the subcommand each one configures (`None`:
/// the top-level, global options).
const TABLES: &[(&str, Option<&str>)] = &[("global", None), ("serve", Some("serve"))];

/// The arguments clap parses, with the configuration file's values as defaults and a
/// `CARELAKE_*` variable for every server option.
pub(crate) fn matches(command: Command, args: Vec<OsString>) -> Result<ArgMatches> {
    let file = match config_path(&args) {
        Some(path) => Some(read(&path)?),
        None => None,
    };
    let command = apply(command, file.as_ref())?;
    Ok(command
        .try_get_matches_from(args)
        .unwrap_or_else(|e| e.exit()))
}

/// Where the configuration file is: `--config FILE` on the command line, `CARELAKE_CONFIG`,
/// or `./carelake.toml` when it exists.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    if let Some(path) = std::env::var_os("CARELAKE_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let local = Path::new(DEFAULT_FILE);
    local.is_file().then(|| local.to_path_buf())
}

fn read(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    parse(&text).with_context(|| format!("in the configuration file {}", path.display()))
}

fn parse(text: &str) -> Result<toml::Table> {
    Ok(text.parse::<toml::Table>()?)
}

/// `command` with the file's values as its arguments' defaults and the server's variables.
pub(crate) fn apply(mut command: Command, file: Option<&toml::Table>) -> Result<Command> {
    command = command.mut_subcommand("serve", with_variables);
    let Some(file) = file else {
        return Ok(command);
    };
    for (table, values) in file {
        let Some((_, subcommand)) = TABLES.iter().find(|(name, _)| *name == table.as_str()) else {
            bail!(
                "unknown table [{table}] (the tables are {})",
                TABLES
                    .iter()
                    .map(|(name, _)| format!("[{name}]"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let Some(values) = values.as_table() else {
            bail!("{table} must be a table ([{table}] and its settings under it)");
        };
        command = match subcommand {
            None => with_defaults(command, table, values, true)?,
            Some(name) => {
                let mut result = Ok(());
                let command = command.mut_subcommand(name, |sub| {
                    match with_defaults(sub.clone(), table, values, false) {
                        Ok(sub) => sub,
                        Err(e) => {
                            result = Err(e);
                            sub
                        }
                    }
                });
                result?;
                command
            }
        };
    }
    Ok(command)
}

/// Names clap gives its own arguments; not settings.
fn is_setting(arg: &clap::Arg) -> bool {
    !matches!(arg.get_id().as_str(), "help" | "version" | "config") && arg.get_long().is_some()
}

/// Every setting of `command` gets the variable `CARELAKE_<NAME>` unless it has one.
fn with_variables(mut command: Command) -> Command {
    let ids: Vec<String> = command
        .get_arguments()
        .filter(|a| is_setting(a) && a.get_env().is_none() && !a.is_global_set())
        .map(|a| a.get_id().to_string())
        .collect();
    for id in ids {
        let name: &'static str = Box::leak(format!("CARELAKE_{}", id.to_uppercase()).into());
        command = command.mut_arg(id, |a| a.env(name));
    }
    command
}

/// `command` with the settings of one table as its arguments' defaults.
fn with_defaults(
    mut command: Command,
    table: &str,
    values: &toml::Table,
    global: bool,
) -> Result<Command> {
    for (key, value) in values {
        let id = key.replace('-', "_");
        let known = command
            .get_arguments()
            .find(|a| a.get_id().as_str() == id && is_setting(a) && a.is_global_set() == global);
        let Some(arg) = known else {
            let mut names: Vec<String> = command
                .get_arguments()
                .filter(|a| is_setting(a) && a.is_global_set() == global)
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect();
            names.sort();
            bail!(
                "unknown setting {key:?} in [{table}] (its settings are {})",
                names.join(", ")
            );
        };
        let multiple = arg.get_num_args().is_some_and(|n| n.max_values() > 1)
            || matches!(arg.get_action(), clap::ArgAction::Append);
        let texts = texts(key, value, multiple)?;
        let texts: Vec<&'static str> = texts
            .into_iter()
            .map(|t| &*Box::leak(t.into_boxed_str()))
            .collect();
        command = command.mut_arg(id, |a| a.default_values(texts));
    }
    Ok(command)
}

/// A setting's value as the text a flag would take: strings as they are, numbers and
/// booleans written out, arrays (for settings that take several values) one text per item.
fn texts(key: &str, value: &toml::Value, multiple: bool) -> Result<Vec<String>> {
    Ok(match value {
        toml::Value::Array(items) if multiple => items
            .iter()
            .map(|item| scalar(key, item))
            .collect::<Result<_>>()?,
        toml::Value::Array(_) => bail!("{key} takes one value, not a list"),
        other => vec![scalar(key, other)?],
    })
}

fn scalar(key: &str, value: &toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            bail!("{key} takes a string, a number or true/false")
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::Cli;

    fn parse_with(file: &str, args: &[&str]) -> Result<Cli> {
        let file = parse(file)?;
        let command = apply(Cli::command(), Some(&file))?;
        let matches = command.try_get_matches_from(args.iter().map(OsString::from))?;
        Ok(Cli::from_arg_matches(&matches)?)
    }

    fn serve(cli: Cli) -> crate::serve::ServeArgs {
        match cli.command {
            crate::Command::Serve(args) => *args,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn the_file_sets_defaults_and_flags_override_it() {
        let file = "[global]\nlake = \"/data/lake\"\n[serve]\nmax-queries = 4\nhttp_listen = \"0.0.0.0:9000\"\nmllp-allow = [\"10.0.0.0/8\", \"192.168.1.7\"]\nschedules = true\nflush-seconds = 0.5\n";
        let cli = parse_with(file, &["carelake", "serve"]).unwrap();
        if std::env::var_os("CARELAKE_LAKE").is_none() {
            assert_eq!(cli.lake, "/data/lake");
        }
        let args = serve(cli);
        assert_eq!(args.max_queries, 4);
        assert_eq!(args.http_listen, "0.0.0.0:9000");
        assert_eq!(args.mllp_allow, ["10.0.0.0/8", "192.168.1.7"]);
        assert!(args.schedules);
        assert_eq!(args.flush_seconds, 0.5);
        let args = serve(parse_with(file, &["carelake", "serve", "--max-queries", "9"]).unwrap());
        assert_eq!(args.max_queries, 9, "a flag wins over the file");
        assert_eq!(args.http_listen, "0.0.0.0:9000");
    }

    #[test]
    fn unknown_tables_keys_and_bad_values_are_errors() {
        let e = parse_with("[serve]\nmax-querys = 4\n", &["carelake", "serve"]).unwrap_err();
        assert!(
            e.to_string().contains("unknown setting \"max-querys\""),
            "{e}"
        );
        assert!(e.to_string().contains("max-queries"), "{e}");
        let e = parse_with("[server]\n", &["carelake", "serve"]).unwrap_err();
        assert!(e.to_string().contains("unknown table [server]"), "{e}");
        let e = parse_with("[global]\nhttp-listen = \"x\"\n", &["carelake", "serve"]);
        assert!(e.is_err(), "a server setting is not global");
        let e = parse_with("[serve]\nmax-queries = \"many\"\n", &["carelake", "serve"]);
        assert!(e.is_err(), "a value clap refuses is refused");
        assert!(parse("[serve\n").is_err());
    }

    #[test]
    fn every_server_option_has_a_variable() {
        let command = apply(Cli::command(), None).unwrap();
        let serve = command
            .get_subcommands()
            .find(|s| s.get_name() == "serve")
            .unwrap();
        for arg in serve
            .get_arguments()
            .filter(|a| is_setting(a) && !a.is_global_set())
        {
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert_eq!(
                env.as_deref(),
                Some(format!("CARELAKE_{}", arg.get_id().as_str().to_uppercase()).as_str()),
                "--{}",
                arg.get_long().unwrap_or_default()
            );
        }
    }

    /// The documented example: every table and key is known, and it names every setting.
    #[test]
    fn the_example_configuration_loads_and_names_every_setting() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/carelake.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let file = parse(&text).unwrap();
        let cli = parse_with(&text, &["carelake", "serve"]).unwrap();
        serve(cli);
        let command = Cli::command();
        for (table, subcommand) in TABLES {
            let args: Vec<&clap::Arg> = match subcommand {
                None => command
                    .get_arguments()
                    .filter(|a| is_setting(a) && a.is_global_set())
                    .collect(),
                Some(name) => command
                    .get_subcommands()
                    .find(|s| s.get_name() == *name)
                    .unwrap()
                    .get_arguments()
                    .filter(|a| is_setting(a) && !a.is_global_set())
                    .collect(),
            };
            let listed = file[*table].as_table().unwrap();
            let commented: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# "))
                .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
                .collect();
            for arg in args {
                let long = arg.get_long().unwrap();
                assert!(
                    listed.contains_key(long) || commented.contains(&long),
                    "docs/carelake.example.toml lacks [{table}] {long}"
                );
            }
        }
    }
}
