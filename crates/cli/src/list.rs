//! Lists printed by the CLI's `list` commands: a header and aligned columns (comfy-table), no
//! borders, so that they read well in a terminal and `grep` and `awk` still work on them.

use comfy_table::{ContentArrangement, Table, presets};

/// Prints `rows` under `header`, each column as wide as its widest cell.
pub(crate) fn print(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    println!("{}", render(header, rows));
}

/// The text [`print()`] prints.
pub(crate) fn render(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_without_borders() {
        let text = render(
            &["user", "roles", "state"],
            [
                vec!["ann".to_string(), "admin".to_string(), "active".to_string()],
                vec![
                    "bartholomew".to_string(),
                    "analyst,clinician".to_string(),
                    "disabled".to_string(),
                ],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("user "), "{text}");
        assert!(lines[1].starts_with("ann "), "{text}");
        // The second column starts at the same place on every line.
        let at = |line: &str, word: &str| line.find(word).unwrap();
        assert_eq!(at(lines[0], "roles"), at(lines[1], "admin"));
        assert_eq!(at(lines[1], "admin"), at(lines[2], "analyst"));
        assert_eq!(at(lines[0], "state"), at(lines[2], "disabled"));
        assert!(!text.contains('|') && !text.contains('+'), "{text}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{text}");
    }
}
