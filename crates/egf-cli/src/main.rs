//! `egf`: train, evaluate, sample and draw Ergodic Generative Flows on tori and spheres.
//!
//! Every subcommand is a thin layer over the library crates (`egf-train`, `egf-flow`,
//! `egf-data`); see `egf --help` and `egf <command> --help`. Errors are printed as one
//! message that names the file, line, field or flag at fault. Exit codes: 0 success,
//! 1 runtime error (a missing or malformed file, a failed run), 2 usage error (bad
//! flags or flag values).

mod args;
mod commands;
mod model_io;
mod points;
mod usage;

// The figures and number formatting live in the egf-plot library (shared with `cargo xtask`).
use egf_plot::{figures, numfmt};

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::usage::UsageError;

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => commands::train::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Sample(a) => commands::sample::run(a),
        Command::Density(a) => commands::density::run(a),
        Command::Plot(a) => commands::plot::run(a),
        Command::Logpdf(a) => commands::logpdf::run(a),
        Command::Info(a) => commands::info::run(a),
    }
}

// glibc returns large tensor buffers to the OS and page-faults them back on the
// next step; mimalloc keeps them (≈ +50 % training throughput, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints the message (or the help text) and exits with 2 for usage errors, 0 for --help
        Err(e) => e.exit(),
    };
    // A panic is a bug: report it as an internal error (exit 1) instead of a backtrace dump.
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(std::io::stderr(), "error: internal error (this is a bug in egf, please report it): {info}");
    }));
    let result = std::panic::catch_unwind(|| run(cli));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let code = if e.downcast_ref::<UsageError>().is_some() { 2 } else { 1 };
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            if code == 2 {
                let _ = writeln!(std::io::stderr(), "\nFor more information, try '--help'.");
            }
            ExitCode::from(code)
        }
        Err(_) => ExitCode::from(1),
    }
}
