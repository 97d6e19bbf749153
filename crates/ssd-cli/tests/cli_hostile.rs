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
        "serve" => vec!["serve", "--trained-model", &missing],
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
    // `ssd serve`: nothing allocated or waited for without bound, every value in the flag's unit.
    (
        "serve",
        "--queue",
        "18446744073709551615",
        "--queue must be in 1..=100000, got 18446744073709551615",
    ),
    (
        "serve",
        "--queue",
        "1000000000",
        "--queue must be in 1..=100000, got 1000000000",
    ),
    (
        "serve",
        "--queue",
        "0",
        "--queue must be in 1..=100000, got 0",
    ),
    (
        "serve",
        "--max-wait-ms",
        "18446744073709551615",
        "--max-wait-ms must be in 0..=1000, got 18446744073709551615",
    ),
    (
        "serve",
        "--max-megapixels",
        "0.0000001",
        "--max-megapixels must be in [0.000001, 268.435456] (one pixel to 16384 x 16384), got 0.0000001",
    ),
    (
        "serve",
        "--max-megapixels",
        "-1",
        "--max-megapixels must be in [0.000001, 268.435456] (one pixel to 16384 x 16384), got -1",
    ),
    (
        "serve",
        "--max-megapixels",
        "nan",
        "--max-megapixels must be in [0.000001, 268.435456] (one pixel to 16384 x 16384), got NaN",
    ),
    (
        "serve",
        "--max-batch",
        "0",
        "--max-batch must be in 1..=1024, got 0",
    ),
    (
        "serve",
        "--max-body-mib",
        "0",
        "--max-body-mib must be in 1..=4096, got 0",
    ),
    (
        "serve",
        "--max-body-mib",
        "18446744073709551615",
        "--max-body-mib must be in 1..=4096, got 18446744073709551615",
    ),
    (
        "serve",
        "--max-images",
        "0",
        "--max-images must be in 1..=1024, got 0",
    ),
    (
        "serve",
        "--timeout-s",
        "0",
        "--timeout-s must be in 1..=3600, got 0",
    ),
    (
        "serve",
        "--memory-budget-mib",
        "16",
        "--memory-budget-mib must be at least --max-body-mib and at most 1048576 (1 TiB), got 16",
    ),
    (
        "serve",
        "--max-connections",
        "0",
        "--max-connections must be in 1..=65536, got 0",
    ),
    (
        "serve",
        "--header-timeout-s",
        "0",
        "--header-timeout-s must be in 1..=3600, got 0",
    ),
    (
        "serve",
        "--shutdown-timeout-s",
        "100000",
        "--shutdown-timeout-s must be in 0..=3600, got 100000",
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

/// A negative number given as its own argument is the flag's value, checked like any other
/// (not clap's "unexpected argument"); `ssd export`'s thresholds without `--postprocess` are
/// refused (they would set nothing: the graph has no post-processing then).
#[test]
fn negative_values_and_thresholds_that_would_be_ignored() {
    let scratch: PathBuf =
        std::env::temp_dir().join(format!("ssd-cli-hostile-neg-{}", std::process::id()));
    let missing = scratch.join("missing").display().to_string();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ssd"))
            .env("RUST_BACKTRACE", "0")
            .args(args)
            .output()
            .expect("ssd runs")
    };
    for (args, expected) in [
        (
            vec![
                "serve",
                "--trained-model",
                &missing,
                "--max-megapixels",
                "-1",
            ],
            "--max-megapixels must be in [0.000001, 268.435456] (one pixel to 16384 x 16384), got -1",
        ),
        (
            vec![
                "detect",
                "--trained-model",
                &missing,
                "--test-image",
                &missing,
                "--min-score",
                "-0.5",
            ],
            "--min-score must be in [0, 1], got -0.5",
        ),
        (
            vec!["train", "--dataroot", &missing, "--lr", "-1"],
            "--lr must be a positive number, got -1",
        ),
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.lines().count() == 1 && err.contains(expected),
            "{args:?}: {err}"
        );
    }
    // What `ssd eval` does, in its help's first line: both formats, both metrics.
    let help = run(&["eval", "--help"]);
    let first = String::from_utf8_lossy(&help.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    assert!(
        first.contains("VOC or COCO") && first.contains("COCO's AP"),
        "{first}"
    );
    for flag in ["--min-score", "--top-k", "--nms-overlap"] {
        let out = run(&[
            "export",
            "--trained-model",
            &missing,
            "--output",
            &missing,
            flag,
            "1",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains("--postprocess"), "{flag}: {err}");
    }
}

/// What `ssd export` and `ssd eval` write is never one of their inputs (the model, the
/// annotation file, an image: by any name), never anything but a regular file (a link to the
/// terminal, a device), and never an existing file without `--overwrite`; what stands there is
/// left exactly as it was. A temporary left by a killed export is removed by the next one.
#[cfg(unix)]
#[test]
fn outputs_that_are_inputs_links_or_devices_are_never_written_over() {
    use ssd_data::{
        ClassList, SYNTHETIC_CLASSES, SyntheticConfig, SyntheticFormat, write_synthetic_as,
    };
    use ssd_model::{CheckpointInfo, SsdConfig};

    let scratch: PathBuf =
        std::env::temp_dir().join(format!("ssd-cli-hostile-outputs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    // A model of the synthetic classes (random weights) and COCO-layout data with its images.
    let model = scratch.join("model.bpk");
    let config = SsdConfig::small(SYNTHETIC_CLASSES.len() + 1);
    let network = config
        .init(&burn::tensor::Device::default())
        .expect("small preset");
    let classes = ClassList::new(SYNTHETIC_CLASSES.map(String::from).to_vec()).expect("classes");
    network
        .save_trained(
            &model,
            &CheckpointInfo {
                config,
                classes,
                iteration: None,
            },
        )
        .expect("model");
    let data = scratch.join("coco");
    write_synthetic_as(
        &data,
        &SyntheticConfig::large_objects(2, 3),
        SyntheticFormat::Coco,
    )
    .expect("data");
    let gt = data.join("annotations/instances_test.json");
    let image = data.join("test/000003.jpg");
    let existing = scratch.join("existing.onnx");
    std::fs::write(&existing, b"keep me").expect("existing");
    let link = scratch.join("terminal.onnx");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).expect("symlink");
    let p = |path: &std::path::Path| path.display().to_string();
    let (model_s, data_s) = (p(&model), p(&data));
    let export = |output: String, overwrite: bool| {
        let mut args = vec![
            "export".to_owned(),
            "--trained-model".to_owned(),
            model_s.clone(),
            "--output".to_owned(),
            output,
        ];
        if overwrite {
            args.push("--overwrite".to_owned());
        }
        args
    };
    let eval = |detections: String, overwrite: bool| {
        let mut args: Vec<String> = [
            "eval",
            "--trained-model",
            &model_s,
            "--dataroot",
            &data_s,
            "--datanames",
            "test",
            "--detections",
            &detections,
        ]
        .map(str::to_owned)
        .to_vec();
        if overwrite {
            args.push("--overwrite".to_owned());
        }
        args
    };
    let rows: Vec<(Vec<String>, &str, Option<PathBuf>)> = vec![
        (
            export(p(&link), true),
            "is a symbolic link, not a regular file",
            None,
        ),
        (
            export("/dev/null".to_owned(), true),
            "is a device, not a regular file",
            None,
        ),
        (
            export(p(&model), true),
            "an input of this command",
            Some(model.clone()),
        ),
        (
            export(p(&scratch.join(".").join("model.bpk")), true),
            "an input of this command",
            Some(model.clone()),
        ),
        (
            export(p(&existing), false),
            "exists; pass overwrite (`--overwrite`) to replace it",
            Some(existing.clone()),
        ),
        (
            eval(p(&gt), false),
            "is an input of this command",
            Some(gt.clone()),
        ),
        (
            eval(p(&existing), false),
            "exists; pass overwrite (`--overwrite`) to replace it",
            Some(existing.clone()),
        ),
        (
            eval(p(&gt), true),
            "an input of this command",
            Some(gt.clone()),
        ),
        (
            eval(p(&image), true),
            "an input of this command",
            Some(image.clone()),
        ),
        (
            eval(p(&model), true),
            "an input of this command",
            Some(model.clone()),
        ),
    ];
    let mut failures = Vec::new();
    for (args, expected, protected) in rows {
        let before = protected.as_ref().map(|f| std::fs::read(f).expect("read"));
        let out = Command::new(env!("CARGO_BIN_EXE_ssd"))
            .env("RUST_BACKTRACE", "0")
            .args(&args)
            .output()
            .expect("ssd runs");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        if out.status.code() != Some(1)
            || lines.len() != 1
            || !lines[0].starts_with("error:")
            || !lines[0].contains(expected)
        {
            failures.push(format!(
                "ssd {}: exit {:?}, stderr {err:?}",
                args.join(" "),
                out.status.code()
            ));
        }
        if let (Some(file), Some(before)) = (&protected, before)
            && std::fs::read(file).ok() != Some(before)
        {
            failures.push(format!(
                "ssd {}: changed {}",
                args.join(" "),
                file.display()
            ));
        }
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the link is still a link"
    );
    // A temporary of a killed export (a process that is not running) goes with the next export.
    let stale = scratch.join(".fresh.onnx.4194999.tmp");
    std::fs::write(&stale, b"half an export").expect("stale");
    let out = Command::new(env!("CARGO_BIN_EXE_ssd"))
        .args(export(p(&scratch.join("fresh.onnx")), false))
        .output()
        .expect("ssd runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stale.exists(), "the stale temporary is removed");
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
