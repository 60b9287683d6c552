//! `carelake key`: the master key of an encrypted lake, and making key files.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use carelake_common::Principal;
use carelake_lake::{KeySource, Lake, MasterKey};
use clap::Subcommand;

/// `carelake key …`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Re-wrap the lake's keys under a new master key (no data file is rewritten) and start a
    /// fresh lake key for new files. Give the current key as usual (--key-file, …).
    Rotate {
        /// The new master key's file (made, readable by its owner only, when it does not exist).
        #[arg(long, conflicts_with = "new_key_command")]
        new_key_file: Option<PathBuf>,
        /// A command printing the new master key (a KMS or vault client).
        #[arg(long)]
        new_key_command: Option<String>,
    },
    /// Write a new random master key to a file (readable by its owner only).
    New {
        /// Where to write it; refused when the file exists.
        file: PathBuf,
    },
}

pub(crate) async fn run(lake_location: &str, which: KeyCommand) -> Result<()> {
    match which {
        KeyCommand::New { file } => {
            write_new_key(&file)?;
            println!(
                "A new key is in {}. Keep it apart from the lake: without it the lake cannot be read.",
                file.display()
            );
            Ok(())
        }
        KeyCommand::Rotate {
            new_key_file,
            new_key_command,
        } => {
            let new_source = match (new_key_file, new_key_command) {
                (Some(file), _) => {
                    if !file.exists() {
                        write_new_key(&file)?;
                        println!("A new key is in {}.", file.display());
                    }
                    KeySource::File(file)
                }
                (None, Some(command)) => KeySource::Command(command),
                (None, None) => bail!("give the new key with --new-key-file or --new-key-command"),
            };
            let lake = Lake::open(lake_location).await?;
            let keys = lake.rotate_key(&new_source).await?;
            let principal = Principal::local_admin();
            let mut record =
                carelake_lake::AuditRecord::new(principal.name.clone(), "cli", "key_rotate");
            record.statement = Some("carelake key rotate".into());
            record.detail = Some(format!("{keys} lake keys, re-wrapped"));
            lake.audit_append(vec![record]).await?;
            println!(
                "The lake's {keys} keys are re-wrapped under {}; new files use a fresh lake key. \
                 From now on open the lake with the new key (the old one no longer opens it).",
                new_source.describe()
            );
            Ok(())
        }
    }
}

/// Writes a new random key as hex to `file`, which must not exist, readable by its owner only.
pub(crate) fn write_new_key(file: &Path) -> Result<()> {
    let key = MasterKey::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(file)
        .with_context(|| format!("creating the key file {}", file.display()))?;
    writeln!(out, "{}", key.to_hex())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("writing the key file {}", file.display()))?;
    Ok(())
}

/// The key source for `init --encrypt`: the one given, a key file made when it is missing.
pub(crate) fn source_for_new_lake(key_file: Option<&Path>) -> Result<KeySource> {
    if let Some(file) = key_file {
        if !file.exists() {
            write_new_key(file)?;
            println!(
                "A new key is in {}. Keep it apart from the lake: without it the lake cannot be read.",
                file.display()
            );
        }
        return Ok(KeySource::File(file.to_path_buf()));
    }
    carelake_lake::key_source().context(
        "--encrypt needs a key: --key-file PATH (made when missing), --key-command, or CARELAKE_KEY",
    )
}
