//! Hostile numbers for every subcommand, one table row each: a value out of its range is a
//! one-line error naming the flag and the allowed range (exit code 1), found before anything is
//! loaded or written — never zero detections, a switched-off NMS or a clamped value with exit 0.

use std::path::PathBuf;
use std::process::Command;

/// A subcommand with the arguments it needs to get as far as checking its numbers: the files
/// named do not exist, so a row that passed the check would fail on them instead.
fn base(subcommand: &str, scratch: &std::path::Path) -> Vec<String> {
    let missing = scratch.join("missing").display().to_string();
    let args: Vec<&str> = match subcommand {
        "detect" => vec![
            "detect",
            "--trained-model",
            &missing,
            "--test-image",
            &missing,
        ],
        "eval" => vec!["eval", "--dataroot", &missing, "--detections", &missing],
        "train" => vec!["train", "--dataroot", &missing, "--model", "small"],
        "quickstart" => vec!["quickstart"],
        other => panic!("no base for {other}"),
    };
    let mut args: Vec<String> = args.into_iter().map(str::to_owned).collect();
    // Where anything a command writes would go.
    let results = scratch.join("results").display().to_string();
    match subcommand {
        "detect" => args.extend(["--output".to_owned(), results]),
        "train" | "quickstart" => args.extend(["--results".to_owned(), results]),
        _ => {}
    }
    args
}

/// `(subcommand, flag, value, the error's text)`.
const ROWS: &[(&str, &str, &str, &str)] = &[
    (
        "detect",
        "--min-score",
        "nan",
        "--min-score must be in [0, 1], got NaN",
    ),
    (
        "detect",
        "--min-score",
        "-0.5",
        "--min-score must be in [0, 1], got -0.5",
    ),
    (
        "detect",
        "--min-score",
        "1.1",
        "--min-score must be in [0, 1], got 1.1",
    ),
    (
        "detect",
        "--top-k",
        "0",
        "--top-k must be at least 1, got 0",
    ),
    (
        "detect",
        "--nms-overlap",
        "2",
        "--nms-overlap must be in (0, 1], got 2",
    ),
    (
        "detect",
        "--nms-overlap",
        "0",
        "--nms-overlap must be in (0, 1], got 0",
    ),
    (
        "detect",
        "--nms-overlap",
        "nan",
        "--nms-overlap must be in (0, 1], got NaN",
    ),
    (
        "eval",
        "--batch-size",
        "0",
        "--batch-size must be at least 1, got 0",
    ),
    (
        "eval",
        "--workers",
        "0",
        "--workers must be in 1..=256, got 0",
    ),
    (
        "eval",
        "--workers",
        "100000",
        "--workers must be in 1..=256, got 100000",
    ),
    (
        "eval",
        "--iou-threshold",
        "0",
        "--iou-threshold must be in (0, 1], got 0",
    ),
    (
        "eval",
        "--iou-threshold",
        "1.5",
        "--iou-threshold must be in (0, 1], got 1.5",
    ),
    (
        "eval",
        "--iou-threshold",
        "nan",
        "--iou-threshold must be in (0, 1], got NaN",
    ),
    (
        "train",
        "--batch-size",
        "0",
        "--batch-size must be at least 1",
    ),
    (
        "train",
        "--iterations",
        "0",
        "--iterations must be at least 1",
    ),
    (
        "train",
        "--workers",
        "0",
        "--workers must be in 1..=256, got 0",
    ),
    (
        "train",
        "--workers",
        "5000",
        "--workers must be in 1..=256, got 5000",
    ),
    (
        "train",
        "--lr",
        "nan",
        "--lr must be a positive number, got NaN",
    ),
    (
        "train",
        "--lr",
        "-1",
        "--lr must be a positive number, got -1",
    ),
    (
        "train",
        "--gamma",
        "0",
        "--gamma must be a positive number, got 0",
    ),
    (
        "train",
        "--alpha",
        "inf",
        "--alpha must be a positive number, got inf",
    ),
    (
        "train",
        "--negpos-ratio",
        "0",
        "--negpos-ratio must be a positive number, got 0",
    ),
    (
        "train",
        "--weight-decay",
        "-1",
        "--weight-decay must be a number >= 0, got -1",
    ),
    (
        "train",
        "--clip-grad",
        "nan",
        "--clip-grad must be a number >= 0, got NaN",
    ),
    (
        "train",
        "--momentum",
        "1",
        "--momentum must be in [0, 1), got 1",
    ),
    (
        "train",
        "--overlap-threshold",
        "0",
        "--overlap-threshold must be in (0, 1], got 0",
    ),
    (
        "train",
        "--expand-ratio",
        "0.5",
        "--expand-ratio must be a number >= 1, got 0.5",
    ),
    (
        "train",
        "--save-every",
        "0",
        "--save-every must be at least 1",
    ),
    (
        "train",
        "--log-every",
        "0",
        "--log-every must be at least 1",
    ),
    (
        "quickstart",
        "--iterations",
        "0",
        "--iterations must be at least 1",
    ),
    (
        "quickstart",
        "--batch-size",
        "0",
        "--batch-size must be at least 1",
    ),
    (
        "quickstart",
        "--workers",
        "0",
        "--workers must be in 1..=256, got 0",
    ),
    (
        "quickstart",
        "--lr",
        "nan",
        "--lr must be a positive number, got NaN",
    ),
    (
        "quickstart",
        "--clip-grad",
        "-1",
        "--clip-grad must be a number >= 0, got -1",
    ),
    (
        "quickstart",
        "--expand-ratio",
        "0.5",
        "--expand-ratio must be a number >= 1, got 0.5",
    ),
];

#[test]
fn numbers_out_of_range_are_one_line_errors_naming_the_flag() {
    let scratch: PathBuf =
        std::env::temp_dir().join(format!("ssd-cli-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let mut failures = Vec::new();
    for &(subcommand, flag, value, expected) in ROWS {
        let out = Command::new(env!("CARGO_BIN_EXE_ssd"))
            .env("RUST_BACKTRACE", "0")
            .args(base(subcommand, &scratch))
            // `--flag=value`: clap takes a separate `-1` for a flag of its own.
            .arg(format!("{flag}={value}"))
            .output()
            .expect("ssd runs");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let ok = out.status.code() == Some(1)
            && lines.len() == 1
            && lines[0].starts_with("error:")
            && lines[0].contains(expected);
        if !ok {
            failures.push(format!(
                "ssd {subcommand} {flag} {value}: exit {:?}, stderr {err:?}",
                out.status.code()
            ));
        }
        if scratch.join("results").exists() {
            failures.push(format!(
                "ssd {subcommand} {flag} {value}: wrote into its results folder"
            ));
            let _ = std::fs::remove_dir_all(scratch.join("results"));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
