//! The interactive SQL shell: history, multi-line statements ending in ';'.

use anyhow::Result;
use carelake_sql::Session;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::output::{OutputFormat, print_result};

pub(crate) async fn run(session: &Session) -> Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".carelake_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!(
        "carelake SQL on {} as {}. End statements with ';'. \\q quits.",
        session.lake().display_location(),
        session.principal()
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "carelake> "
        } else {
            "       -> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
                    break;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if !trimmed.ends_with(';') {
                    continue;
                }
                let _ = editor.add_history_entry(buffer.trim());
                match session.sql_all(&buffer).await {
                    Ok(results) => {
                        for result in &results {
                            if let Err(e) = print_result(result, OutputFormat::Table, None) {
                                eprintln!("error: {e}");
                            }
                        }
                    }
                    Err(e) => eprintln!("error: {}", e.to_string().replace('\n', " ")),
                }
                buffer.clear();
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
