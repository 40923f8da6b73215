//! One module per subcommand.

pub mod density;
pub mod eval;
pub mod info;
pub mod logpdf;
pub mod plot;
pub mod sample;
pub mod train;

use std::path::Path;

use anyhow::Result;

use crate::outln;
use crate::usage::usage;

/// Prints `rows` as an aligned two-column table, indented by two spaces.
pub fn print_table(rows: &[(String, String)]) {
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (k, v) in rows {
        let pad = width - k.chars().count();
        outln!("  {k}{}  {v}", " ".repeat(pad));
    }
}

/// What an output file name asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutKind {
    Csv,
    Png,
}

/// The kind of `--out` from its extension (`.csv` or `.png`); anything else is a usage error.
pub fn out_kind(path: &Path, allowed: &[OutKind], flag: &str) -> Result<OutKind> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let kind = match ext.as_deref() {
        Some("csv") => Some(OutKind::Csv),
        Some("png") => Some(OutKind::Png),
        _ => None,
    };
    match kind {
        Some(k) if allowed.contains(&k) => Ok(k),
        _ => {
            let names: Vec<&str> = allowed.iter().map(|k| if *k == OutKind::Csv { ".csv" } else { ".png" }).collect();
            Err(usage(format!("{flag} {}: the file name must end in {}", path.display(), names.join(" or "))))
        }
    }
}

/// Checks that the folder of an output file exists, so that the error names the file.
pub fn check_out_dir(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            anyhow::bail!("cannot write {}: directory {} does not exist", path.display(), parent.display());
        }
    }
    Ok(())
}
