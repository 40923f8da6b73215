//! The command line (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use egf_data::{EarthDataset, PointFormat};
use egf_train::DeviceSpec;

/// Ergodic Generative Flows on tori and spheres: train, evaluate, sample, draw.
///
/// Points files are CSV with a header line: sphere points as `lat,lon` in degrees (or
/// unit vectors `x1,x2,x3` with `--format unit`), torus points as `x1,…,xd` in [0, 1)
/// (or angles with `--format degrees|radians`).
#[derive(Debug, Parser)]
#[command(name = "egf", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model (the embedded T^2 demo when no --config is given).
    Train(TrainArgs),
    /// Evaluate a checkpoint on points: proper-density NLL, importance-sampling NLL, δ, trajectories.
    Eval(EvalArgs),
    /// Draw samples from a checkpoint with the Markov chain and write them as CSV.
    Sample(SampleArgs),
    /// Write the reported density on a grid, as CSV or as a PNG heat map.
    Density(DensityArgs),
    /// Draw the density as a PNG (torus heat map, or world map for the sphere) with data points.
    Plot(PlotArgs),
    /// Log-density of the reported density at given points.
    Logpdf(LogpdfArgs),
    /// Describe a checkpoint: manifold, family, network, parameters, ∫t, δ, ∫g.
    Info(InfoArgs),
}

/// Tensor device.
fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    s.parse()
}

/// Point file format, with short aliases.
pub fn parse_format(s: &str) -> Result<PointFormat, String> {
    let f = match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "latlon" | "lat_lon" | "lat_lon_deg" => PointFormat::LatLonDeg,
        "unit" | "unit_vector" | "xyz" => PointFormat::UnitVector,
        "torus" | "coords" | "torus_coords" => PointFormat::TorusCoords,
        "degrees" | "deg" | "angles_deg" => PointFormat::AnglesDeg,
        "radians" | "rad" | "angles_rad" => PointFormat::AnglesRad,
        _ => {
            return Err(format!(
                "unknown point format `{s}`; expected latlon, unit, torus, degrees or radians \
                 (long names: lat_lon_deg, unit_vector, torus_coords, angles_deg, angles_rad)"
            ))
        }
    };
    Ok(f)
}

fn parse_dataset(s: &str) -> Result<EarthDataset, String> {
    s.parse::<EarthDataset>().map_err(|e| e.to_string())
}

fn parse_weight(s: &str) -> Result<f64, String> {
    let w: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..1.0).contains(&w) {
        return Err(format!("{w} is not in [0, 1)"));
    }
    Ok(w)
}

fn parse_positive(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("`{s}` is not a non-negative integer"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// Where the model comes from.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model to use: a model directory (with model.json), a checkpoint directory
    /// (`…/checkpoints/best`), or a run's output directory (its best checkpoint is used).
    #[arg(long, short = 'c', value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Tensor device: cpu, cuda, cuda:N, metal (GPU devices need a build with that feature).
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceSpec,
}

/// Points given as a file or as an earth data set.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// CSV file of points on the model's manifold.
    #[arg(long, value_name = "FILE", conflicts_with = "dataset")]
    pub data: Option<PathBuf>,
    /// Format of --data: latlon (S^2 default), unit, torus (T^d default), degrees, radians.
    #[arg(long, value_name = "F", value_parser = parse_format, requires = "data")]
    pub format: Option<PointFormat>,
    /// Earth data set: volcano, earthquake, flood or fire (points of S^2).
    #[arg(long, value_name = "NAME", value_parser = parse_dataset)]
    pub dataset: Option<EarthDataset>,
    /// Folder holding the earth CSV files (default: the EGF_DATA_DIR environment variable).
    #[arg(long, value_name = "DIR", requires = "dataset")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// TOML config (see configs/); without it, the embedded demo (a toy density on T^2).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. `--set steps=200 --set optimizer.lr=3e-4`
    /// (the value is TOML; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Output directory (replaces the config's output_dir).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Continue from the last checkpoint in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Tensor device (replaces the config's device): cpu, cuda, cuda:N, metal.
    #[arg(long, value_name = "DEVICE", value_parser = parse_device)]
    pub device: Option<DeviceSpec>,
    /// Stop after this many steps in this session (resume later with --resume).
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub max_steps: Option<usize>,
    /// Print the effective config (after --set) as TOML and exit without training.
    #[arg(long)]
    pub print_config: bool,
    /// Do not draw the comparison PNG after training.
    #[arg(long)]
    pub no_figure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitPart {
    /// Every point.
    All,
    /// The training part of the seeded 80/10/10 split.
    Train,
    /// The validation part.
    Validation,
    /// The test part.
    Test,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("points").required(true).args(["data", "dataset"])))]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which part of the seeded 80/10/10 split to score.
    #[arg(long, value_enum, default_value = "all")]
    pub split: SplitPart,
    /// Seed of the split (default: the seed of the run's config.toml when the checkpoint
    /// belongs to a run directory, else 0).
    #[arg(long, value_name = "S")]
    pub split_seed: Option<u64>,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Backward trajectories per point of the importance-sampling NLL (0 skips it).
    #[arg(long, value_name = "K")]
    pub importance_samples: Option<usize>,
    /// Forward chains for the trajectory statistics (0 skips them).
    #[arg(long, value_name = "N")]
    pub sampler_chains: Option<usize>,
    /// Cap on the moves of forward chains and backward trajectories.
    #[arg(long, value_name = "M", value_parser = parse_positive)]
    pub max_moves: Option<usize>,
    /// Defensive uniform weight w of the reported density.
    #[arg(long, value_name = "W", value_parser = parse_weight)]
    pub defensive_weight: Option<f64>,
    /// Resolution R of the coarser of the two quadrature rules for ∫t⁺, δ, ∫g: the report
    /// integrates on the rule of 2R and checks against R [default: the run's
    /// eval.quadrature_resolution, 64 for a model outside a run].
    #[arg(long, value_name = "R", value_parser = parse_positive)]
    pub quadrature: Option<usize>,
    /// Seed of the sampler and of the backward trajectories.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of samples.
    #[arg(short = 'n', long = "num-samples", value_name = "N", value_parser = parse_positive)]
    pub n: usize,
    /// Output CSV file.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Seed of the chains.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Cap T_max on the moves of a chain (chains reaching it are stopped and counted).
    #[arg(long, value_name = "M", default_value_t = 1000)]
    pub max_moves: usize,
    /// Probability of outputting a uniform point instead (the reported density's
    /// defensive mixture, spec section 7); 0 for the bare chain.
    #[arg(long, value_name = "W", default_value_t = 1e-3, value_parser = parse_weight)]
    pub defensive_weight: f64,
    /// Output format: latlon (S^2 default), unit, torus (T^d default), degrees, radians.
    #[arg(long, value_name = "F", value_parser = parse_format)]
    pub format: Option<PointFormat>,
    /// Chains run together (bounds memory).
    #[arg(long, value_name = "B", default_value_t = 8192, value_parser = parse_positive)]
    pub batch: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    /// Linear on the torus, logarithmic on the sphere.
    Auto,
    /// Linear colour scale from 0 to the maximum.
    Linear,
    /// Logarithmic colour scale over four decades below the maximum.
    Log,
}

/// The reported density on a picture grid, shared by `density` and `plot`.
#[derive(Debug, Args)]
pub struct DensityGridArgs {
    /// Grid resolution: R×R on the torus, R latitudes × 2R longitudes on the sphere.
    #[arg(long, short = 'r', value_name = "R", default_value_t = 128, value_parser = parse_positive)]
    pub resolution: usize,
    /// Defensive uniform weight w of the reported density.
    #[arg(long, value_name = "W", default_value_t = 1e-3, value_parser = parse_weight)]
    pub defensive_weight: f64,
    /// Resolution R of the quadrature rule for ∫t⁺, δ, ∫g [default: that of the run's final
    /// evaluation, twice its eval.quadrature_resolution; 128 for a model outside a run].
    #[arg(long, value_name = "R", value_parser = parse_positive)]
    pub quadrature: Option<usize>,
    /// Colour scale of the PNG.
    #[arg(long, value_enum, default_value = "auto")]
    pub scale: Scale,
    /// Points per network evaluation (bounds memory).
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = parse_positive)]
    pub chunk: usize,
}

#[derive(Debug, Args)]
pub struct DensityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output file: .csv (columns x1,x2,density or lat,lon,density) or .png (heat map).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub grid: DensityGridArgs,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output PNG file.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub grid: DensityGridArgs,
    /// Largest number of data points drawn (a seeded subset beyond it).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub max_points: usize,
}

#[derive(Debug, Args)]
pub struct LogpdfArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Input CSV of points.
    #[arg(long, value_name = "FILE")]
    pub points: PathBuf,
    /// Output CSV: the input coordinates, log_density, t_nonpositive.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Format of --points: latlon (S^2 default), unit, torus (T^d default), degrees, radians.
    #[arg(long, value_name = "F", value_parser = parse_format)]
    pub format: Option<PointFormat>,
    /// Defensive uniform weight w of the reported density.
    #[arg(long, value_name = "W", default_value_t = 1e-3, value_parser = parse_weight)]
    pub defensive_weight: f64,
    /// Resolution R of the quadrature rule for ∫t⁺, δ, ∫g [default: that of the run's final
    /// evaluation, twice its eval.quadrature_resolution; 128 for a model outside a run].
    #[arg(long, value_name = "R", value_parser = parse_positive)]
    pub quadrature: Option<usize>,
    /// Points per network evaluation (bounds memory).
    #[arg(long, value_name = "N", default_value_t = 8192, value_parser = parse_positive)]
    pub chunk: usize,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Resolution R of the quadrature rule for ∫t⁺, δ, ∫g [default: that of the run's final
    /// evaluation, twice its eval.quadrature_resolution; 128 for a model outside a run].
    #[arg(long, value_name = "R", value_parser = parse_positive)]
    pub quadrature: Option<usize>,
    /// Also run the ergodicity diagnostic of the family (about 0.1 s).
    #[arg(long)]
    pub ergodicity: bool,
    /// Print the description as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}
