//! End-to-end tests of the `egf` binary: bad arguments, bad files, and a tiny
//! train → info → sample → logpdf → density → plot → eval round trip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EGF: &str = env!("CARGO_BIN_EXE_egf");

fn egf(args: &[&str]) -> Output {
    Command::new(EGF).args(args).env_remove("EGF_DATA_DIR").output().expect("the egf binary runs")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A fresh empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("egf-cli-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit code `code`, stderr containing every one of `needles`, and no panic.
fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(code), "stdout:\n{out}\nstderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr does not mention `{n}`:\n{err}");
    }
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    assert_fails(&egf(&["frobnicate"]), 2, &["frobnicate"]);
    assert_fails(&egf(&["info"]), 2, &["--checkpoint"]);
    assert_fails(&egf(&["sample", "--checkpoint", "x", "-n", "abc", "--out", "s.csv"]), 2, &["abc", "-n"]);
    assert_fails(&egf(&["sample", "--checkpoint", "x", "-n", "10"]), 2, &["--out"]);
    assert_fails(&egf(&["eval", "--checkpoint", "x"]), 2, &["--data"]);
    assert_fails(&egf(&["eval", "--checkpoint", "x", "--data", "a.csv", "--dataset", "fire"]), 2, &["--dataset"]);
    assert_fails(&egf(&["eval", "--checkpoint", "x", "--dataset", "volcanoes"]), 2, &["volcanoes", "earthquake"]);
    assert_fails(
        &egf(&["logpdf", "--checkpoint", "x", "--points", "p.csv", "--out", "o.csv", "--format", "furlongs"]),
        2,
        &["furlongs"],
    );
    assert_fails(&egf(&["info", "--checkpoint", "x", "--device", "tpu"]), 2, &["tpu"]);
    assert_fails(
        &egf(&["train", "--set", "no_such_key=3", "--print-config"]),
        2,
        &["--set no_such_key=3", "no_such_key"],
    );
    assert_fails(&egf(&["train", "--set", "steps=many", "--print-config"]), 2, &["steps"]);
    let help = egf(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    for cmd in ["train", "eval", "sample", "density", "plot", "logpdf", "info"] {
        assert!(text(&help).0.contains(cmd), "help lists {cmd}");
    }
}

#[test]
fn bad_files_are_named() {
    let tmp = TempDir::new("badfiles");
    // a checkpoint directory that does not exist
    let missing = tmp.path("no-such-run");
    assert_fails(&egf(&["info", "--checkpoint", s(&missing)]), 1, &[s(&missing), "does not exist"]);
    // a directory without a model
    assert_fails(&egf(&["info", "--checkpoint", s(&tmp.0)]), 1, &["model.json"]);
    // a config with an unknown key names the file and the key
    let demo = egf(&["train", "--print-config"]);
    assert!(demo.status.success());
    let demo = String::from_utf8(demo.stdout).unwrap();
    let cfg = tmp.path("bad.toml");
    std::fs::write(&cfg, demo.replace("[optimizer]\n", "[optimizer]\nlearning_rate = 0.1\n")).unwrap();
    assert_fails(&egf(&["train", "--config", s(&cfg)]), 1, &["bad.toml", "learning_rate"]);
    // the demo config itself reads back
    std::fs::write(&cfg, &demo).unwrap();
    let o = egf(&["train", "--config", s(&cfg), "--print-config"]);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), demo);
    assert_fails(&egf(&["train", "--config", s(&tmp.path("none.toml"))]), 1, &["none.toml"]);
}

/// Trains a tiny model into `dir` (a few steps on a small toy sample).
fn tiny_train(dir: &Path) -> Output {
    let sets = [
        "steps=20",
        "log_interval=10",
        "eval_interval=10",
        "checkpoint_interval=10",
        "model.network.width=8",
        "model.network.depth=1",
        "model.features.max_frequency=2",
        "task.data.samples=600",
        "task.batch.data=64",
        "task.batch.nu_train=64",
        "task.batch.uniform=32",
        "eval.quadrature_resolution=16",
        "eval.importance_samples=2",
        "eval.sampler_chains=50",
        "eval.sampler_max_moves=50",
        "eval.importance_max_moves=50",
        "eval.figure_resolution=16",
    ];
    let mut args = vec!["train", "--quiet", "--output-dir", s(dir)];
    for set in &sets {
        args.push("--set");
        args.push(set);
    }
    egf(&args)
}

#[test]
fn end_to_end_on_the_torus() {
    let tmp = TempDir::new("e2e");
    let run = tmp.path("run");
    let o = tiny_train(&run);
    let (out, err) = text(&o);
    assert!(o.status.success(), "train failed\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("NLL, proper density"), "{out}");
    assert!(run.join("metrics.jsonl").is_file());
    assert!(run.join("checkpoints/best/model/model.json").is_file());
    let fig = run.join("comparison.png");
    assert!(std::fs::metadata(&fig).map(|m| m.len() > 1000).unwrap_or(false), "{out}\n{err}");

    // info: on the run directory (its best checkpoint) and as JSON
    let o = egf(&["info", "--checkpoint", s(&run)]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for needle in ["T^2", "torus_sl2z_irrational", "parameters", "∫ t dλ", "δ", "∫ g dλ", "checkpoint step"] {
        assert!(out.contains(needle), "info lacks {needle}:\n{out}");
    }
    let o = egf(&["info", "--checkpoint", s(&run.join("checkpoints/last")), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("info --json is JSON");
    let integral_t = v["mass"]["integral_t"].as_f64().unwrap();
    assert!((integral_t - 1.0).abs() < 1e-3, "mass identity: ∫t = {integral_t}");

    // sample
    let samples = tmp.path("samples.csv");
    let o = egf(&["sample", "--checkpoint", s(&run), "-n", "100", "--out", s(&samples), "--seed", "3"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("truncated") && out.contains("mean moves"), "{out}");
    let rows = std::fs::read_to_string(&samples).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines[0], "x1,x2");
    assert_eq!(lines.len(), 101);
    for l in &lines[1..] {
        let v: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
        assert!(v.len() == 2 && v.iter().all(|c| (0.0..1.0).contains(c)), "{l}");
    }

    // logpdf of the samples: input columns + log_density + t_nonpositive
    let lp = tmp.path("logpdf.csv");
    let o = egf(&["logpdf", "--checkpoint", s(&run), "--points", s(&samples), "--out", s(&lp)]);
    assert!(o.status.success(), "{}", text(&o).1);
    let rows = std::fs::read_to_string(&lp).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines[0], "x1,x2,log_density,t_nonpositive");
    assert_eq!(lines.len(), 101);
    assert_eq!(lines[1].split(',').take(2).collect::<Vec<_>>(), lines_of(&samples)[1].split(',').collect::<Vec<_>>());
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        assert!(f[2].parse::<f64>().unwrap().is_finite(), "{l}");
        assert!(f[3] == "0" || f[3] == "1", "{l}");
    }

    // density grid as CSV and PNG
    let csv = tmp.path("density.csv");
    let o = egf(&["density", "--checkpoint", s(&run), "--out", s(&csv), "--resolution", "12"]);
    assert!(o.status.success(), "{}", text(&o).1);
    let rows = lines_of(&csv);
    assert_eq!(rows[0], "x1,x2,density");
    assert_eq!(rows.len(), 1 + 12 * 12);
    let mean: f64 = rows[1..].iter().map(|l| l.split(',').nth(2).unwrap().parse::<f64>().unwrap()).sum::<f64>() / 144.0;
    assert!((mean - 1.0).abs() < 0.05, "the density integrates to about 1 on T^2: mean {mean}");
    let png = tmp.path("density.png");
    let o = egf(&["density", "--checkpoint", s(&run), "--out", s(&png), "--resolution", "16"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    assert_fails(&egf(&["density", "--checkpoint", s(&run), "--out", s(&tmp.path("d.txt"))]), 2, &["d.txt", ".csv"]);

    // plot with the samples overlaid
    let plot = tmp.path("plot.png");
    let o = egf(&["plot", "--checkpoint", s(&run), "--out", s(&plot), "--data", s(&samples), "--resolution", "16"]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(std::fs::metadata(&plot).unwrap().len() > 1000);

    // eval, with a JSON report
    let json = tmp.path("eval.json");
    let o = egf(&[
        "eval",
        "--checkpoint",
        s(&run),
        "--data",
        s(&samples),
        "--json",
        s(&json),
        "--importance-samples",
        "2",
        "--sampler-chains",
        "20",
        "--max-moves",
        "50",
        "--quadrature",
        "16",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for needle in ["NLL, proper density", "NLL, importance sampling", "δ", "t ≤ 0", "mean moves", "quadrature check"]
    {
        assert!(out.contains(needle), "eval lacks {needle}:\n{out}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["points"], 100);
    // T²: the reported integrals on the 32 × 32 grid, checked on the 16 × 16 one
    assert_eq!((v["quadrature_points"].as_u64(), v["quadrature_check"]["points"].as_u64()), (Some(1024), Some(256)));
    // logpdf normalizes on the same rule as the report by default: the same NLL
    let logpdf_mean =
        lines_of(&lp)[1..].iter().map(|l| l.split(',').nth(2).unwrap().parse::<f64>().unwrap()).sum::<f64>() / 100.0;
    let nll = v["nll"].as_f64().unwrap();
    assert!((logpdf_mean + nll).abs() < 1e-5 * nll.abs().max(1.0), "logpdf mean {logpdf_mean} vs eval NLL {nll}");
    assert!(v["nll"].as_f64().unwrap().is_finite());
    // the test part of the split of the 100 samples
    let o = egf(&[
        "eval",
        "--checkpoint",
        s(&run),
        "--data",
        s(&samples),
        "--split",
        "test",
        "--importance-samples",
        "0",
        "--sampler-chains",
        "0",
        "--quadrature",
        "16",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("test part") && out.contains("10 of 100 points"), "{out}");

    // bad points files name the file and the line
    let bad = tmp.path("bad.csv");
    std::fs::write(&bad, "x1,x2\n0.1,0.2\n0.3,zero\n").unwrap();
    assert_fails(
        &egf(&["logpdf", "--checkpoint", s(&run), "--points", s(&bad), "--out", s(&lp)]),
        1,
        &["bad.csv", "line 3", "zero"],
    );
    std::fs::write(&bad, "x1,x2\n0.1,0.2\n0.3,0.4\nNaN,0.5\n").unwrap();
    assert_fails(&egf(&["eval", "--checkpoint", s(&run), "--data", s(&bad)]), 1, &["bad.csv", "line 4", "not finite"]);
    std::fs::write(&bad, "x1,x2\n0.1,0.2,0.3\n").unwrap();
    assert_fails(
        &egf(&["sample", "--checkpoint", s(&run), "-n", "5", "--out", s(&tmp.path("none/x.csv"))]),
        1,
        &["none"],
    );
    assert_fails(
        &egf(&["plot", "--checkpoint", s(&run), "--out", s(&plot), "--data", s(&bad)]),
        1,
        &["bad.csv", "line 2"],
    );
    // a format that does not fit the manifold, and an earth data set on a torus model
    assert_fails(
        &egf(&["logpdf", "--checkpoint", s(&run), "--points", s(&samples), "--out", s(&lp), "--format", "latlon"]),
        2,
        &["lat_lon_deg", "T^2"],
    );
    assert_fails(
        &egf(&["eval", "--checkpoint", s(&run), "--dataset", "volcano", "--data-dir", "."]),
        2,
        &["S^2", "T^2"],
    );
}

fn lines_of(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap().lines().map(String::from).collect()
}
