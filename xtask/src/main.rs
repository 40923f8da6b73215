//! `cargo xtask reproduce <experiment> [--seeds N] [--quick] [--device cpu|cuda]`
//!
//! Runs an experiment of the paper end to end through the library crates,
//! writes its results under `results/<experiment>/` (a Markdown table `table.md`, a
//! CSV `results.csv`, the figures as PNG files in `figures/`, the exact configs used in
//! `configs/`, and every run's directory with metrics, checkpoints and figure data in
//! `runs/`) and prints the table. Figures are drawn through the `egf-plot` library.

mod figures;
mod literature;
mod reproduce;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Project automation for egf.
#[derive(Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce one of the paper's experiments.
    Reproduce(ReproduceArgs),
}

/// The experiments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Experiment {
    /// EGF on the earth data sets (volcano, earthquake, flood, fire): test NLL table.
    Earth,
    /// Imitation learning of toy T² densities with the SL₂(Z) family, with and without irrational translations.
    TorusIl,
    /// The checkerboard reward on T²: stable FM versus divergence FM with and without regularizer.
    Rl,
    /// Stable FM, trajectory balance, reverse KL with and without the leave-one-out control variate,
    /// forward KL and the α-mixture (α = 0.5) on the checkerboard reward on T² and a vMF mixture reward on S².
    Variational,
}

/// Arguments of `reproduce`.
#[derive(Parser, Clone, Debug)]
pub struct ReproduceArgs {
    /// Which experiment.
    #[arg(value_enum)]
    pub experiment: Experiment,
    /// Number of seeds per setting (default 5 for earth, 1 otherwise; 1 with --quick).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// A scaled-down version that finishes in a few minutes on 2 CPU cores.
    #[arg(long)]
    pub quick: bool,
    /// Tensor device: cpu, cuda or metal (cuda/metal need a build with that feature).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Folder of the earth CSV files (default: $EGF_DATA_DIR, else ../shared/data/earth).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Folder holding the experiment configs.
    #[arg(long, default_value = "configs")]
    pub configs: PathBuf,
    /// Where results go (`<out>/<experiment>/`).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Restrict the earth experiment to these data sets (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub datasets: Vec<String>,
    /// Override the number of training steps of every run (default: the configs', or 300 with --quick).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Pick up the runs already under `<out>/<experiment>/runs/`: a finished run (one with a
    /// `report.json`) is not trained again and its report goes into the table, an interrupted
    /// one continues from its last checkpoint. A run folder whose `config.toml` differs from
    /// the config the run gets now is an error, never overwritten. Without `--resume` every
    /// run starts over.
    #[arg(long)]
    pub resume: bool,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Reproduce(args) => reproduce::run(&args).map(|table| println!("{table}")),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
