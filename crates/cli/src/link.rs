//! `carelake link`: the master patient index's linker on files a user brings. One file is
//! deduplicated; two files are linked to each other. Writes scored pairs, clusters and the
//! trained model as CSV, and with `--truth` measures precision, recall and F1.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use carelake_link::{
    Accuracy, CsvInput, Field, LinkConfig, LinkMode, cluster, link, pairs_within, read_csv,
};
use clap::Args;

/// Arguments of `carelake link`.
#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    /// One CSV file to deduplicate, or two to link to each other.
    #[arg(required = true, num_args = 1..=2)]
    files: Vec<PathBuf>,
    /// The column holding each record's id.
    #[arg(long)]
    id_column: String,
    /// Columns mapped to fields: theirs=ours,… with ours one of first_name, middle_name,
    /// last_name, birth_date, sex, national_id, street_number, street, locality, city, zip,
    /// state, phone, email. Columns named like a field (given_name, surname, dob, postcode…)
    /// are recognised without it.
    #[arg(long, value_delimiter = ',')]
    map: Vec<String>,
    /// A column naming each row's source system (for a file holding several EHRs' records).
    #[arg(long)]
    source_column: Option<String>,
    /// A column with each row's last update; of rows sharing a source and id, the latest wins.
    #[arg(long)]
    updated_column: Option<String>,
    /// Pairs at or above this match probability are linked.
    #[arg(long, default_value_t = 0.9)]
    match_threshold: f64,
    /// Pairs from this probability up to the match threshold are written for review.
    #[arg(long, default_value_t = 0.5)]
    review_threshold: f64,
    /// Known true pairs (a CSV of two id columns, with a header) to measure accuracy against.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Output folder for pairs.csv, clusters.csv and model.csv.
    #[arg(long)]
    out: PathBuf,
}

fn parse_map(map: &[String]) -> Result<Vec<(String, Field)>> {
    map.iter()
        .filter(|m| !m.trim().is_empty())
        .map(|m| {
            let (theirs, ours) = m
                .split_once('=')
                .with_context(|| format!("--map takes theirs=ours, not '{m}'"))?;
            let field = Field::from_column(ours.trim())
                .with_context(|| format!("'{}' is not a field the linker knows", ours.trim()))?;
            Ok((theirs.trim().to_string(), field))
        })
        .collect()
}

fn source_name(path: &Path, index: usize) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("file{}", index + 1))
}

pub(crate) fn run(args: LinkArgs) -> Result<()> {
    let started = Instant::now();
    let map = parse_map(&args.map)?;
    let mut names: Vec<String> = args
        .files
        .iter()
        .enumerate()
        .map(|(i, p)| source_name(p, i))
        .collect();
    if names.len() == 2 && names[0] == names[1] {
        names[1].push_str("_2");
    }
    let inputs: Vec<CsvInput<'_>> = args
        .files
        .iter()
        .zip(&names)
        .map(|(path, name)| CsvInput {
            path,
            source: name.clone(),
            source_column: args.source_column.clone(),
            id_column: args.id_column.clone(),
            updated_column: args.updated_column.clone(),
            map: &map,
        })
        .collect();
    let records = read_csv(&inputs)?;
    let mode = if args.files.len() == 2 {
        if args.source_column.is_some() {
            bail!("--source-column is for deduplicating one file; two files are two sources");
        }
        LinkMode::Link
    } else {
        LinkMode::Dedupe
    };
    let config = LinkConfig {
        mode,
        match_threshold: args.match_threshold,
        review_threshold: args.review_threshold,
        ..LinkConfig::default()
    };
    let linkage = link(&records, &config)?;
    let clusters = cluster(
        &records,
        linkage.links().map(|p| (p.a, p.b)),
        &HashMap::new(),
    );
    let elapsed = started.elapsed();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let csv_error = |path: &Path| format!("writing {}", path.display());

    let pairs_path = args.out.join("pairs.csv");
    let mut pairs = csv::Writer::from_path(&pairs_path).with_context(|| csv_error(&pairs_path))?;
    let mut header = vec![
        "source_a",
        "id_a",
        "source_b",
        "id_b",
        "match_probability",
        "match_weight",
        "decision",
    ];
    let level_columns: Vec<String> = linkage
        .comparisons
        .iter()
        .map(|c| format!("level_{}", c.name()))
        .collect();
    header.extend(level_columns.iter().map(String::as_str));
    pairs.write_record(&header)?;
    for p in &linkage.pairs {
        let (a, b) = (p.a as usize, p.b as usize);
        let mut row = vec![
            records.sources()[records.source_of(a)].clone(),
            records.id(a).to_string(),
            records.sources()[records.source_of(b)].clone(),
            records.id(b).to_string(),
            format!("{:.6}", p.probability),
            format!("{:.3}", p.weight),
            if p.probability >= linkage.match_threshold {
                "link"
            } else {
                "review"
            }
            .to_string(),
        ];
        row.extend(
            (0..linkage.comparisons.len())
                .map(|k| linkage.comparisons[k].level_labels()[p.level(k) as usize].to_string()),
        );
        pairs.write_record(&row)?;
    }
    pairs.flush().with_context(|| csv_error(&pairs_path))?;

    let clusters_path = args.out.join("clusters.csv");
    let mut out =
        csv::Writer::from_path(&clusters_path).with_context(|| csv_error(&clusters_path))?;
    out.write_record(["source", "id", "person_key", "cluster_size"])?;
    let members = clusters.members();
    for group in &members {
        for record in group {
            let i = *record as usize;
            out.write_record([
                records.sources()[records.source_of(i)].as_str(),
                records.id(i),
                clusters.person_key(i),
                &group.len().to_string(),
            ])?;
        }
    }
    out.flush().with_context(|| csv_error(&clusters_path))?;

    let model_path = args.out.join("model.csv");
    let mut out = csv::Writer::from_path(&model_path).with_context(|| csv_error(&model_path))?;
    out.write_record(["comparison", "level", "m", "u", "match_weight"])?;
    for c in &linkage.model.comparisons {
        for level in &c.levels {
            out.write_record([
                c.name,
                level.label,
                &format!("{:.6}", level.m),
                &format!("{:.8}", level.u),
                &format!("{:.3}", level.weight()),
            ])?;
        }
    }
    out.flush().with_context(|| csv_error(&model_path))?;

    let links = linkage.links().count();
    let reviews = linkage.reviews().count();
    let multi = members.iter().filter(|m| m.len() > 1).count();
    println!(
        "Linked {} records from {} source(s): {} candidate pairs compared, {links} linked, {reviews} for review; {} persons ({multi} with more than one record) in {:.2}s.",
        records.len(),
        records.sources().len(),
        linkage.candidates,
        clusters.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "Fields compared: {}.",
        linkage
            .comparisons
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !linkage.model.converged {
        println!("Note: EM stopped at its iteration limit before converging.");
    }
    if linkage.blocking.oversized_blocks > 0 {
        println!(
            "Note: {} blocks of more than {} records were not compared (a value that common says nothing about identity).",
            linkage.blocking.oversized_blocks,
            LinkConfig::default().max_block_size
        );
    }
    println!(
        "Wrote {}, {} and {}.",
        pairs_path.display(),
        clusters_path.display(),
        model_path.display()
    );

    if let Some(truth) = &args.truth {
        let text = std::fs::read_to_string(truth)
            .with_context(|| format!("reading {}", truth.display()))?;
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut true_pairs: Vec<(String, String)> = Vec::new();
        for row in reader.records() {
            let row = row.with_context(|| format!("reading {}", truth.display()))?;
            if row.len() < 2 {
                bail!("{}: each row needs two ids", truth.display());
            }
            true_pairs.push((row[0].to_string(), row[1].to_string()));
        }
        // Pairs implied by the clusters, by id.
        let predicted: Vec<(&str, &str)> = pairs_within(members.iter().map(Vec::as_slice))
            .into_iter()
            .map(|(a, b)| (records.id(a as usize), records.id(b as usize)))
            .collect();
        let accuracy = Accuracy::measure(
            predicted,
            true_pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())),
        );
        println!("Against {}: {accuracy}.", truth.display());
    }
    Ok(())
}
