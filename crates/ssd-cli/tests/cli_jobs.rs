//! `ssd detect` as a job over many images: list files, `--shard K/N`, `--jsonl` results that a
//! rerun resumes (after a SIGKILL too), and bad images reported without stopping the job. The
//! model is the small preset with random weights, saved once per test: the detections are
//! whatever they are, the same on every run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ssd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ssd"));
    c.env("RUST_BACKTRACE", "0");
    for var in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        c.env_remove(var);
    }
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-jobs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// `count` small images in `dir/images`, and the model, `dir/small.bpk`.
fn job(dir: &Path, count: u32) -> Vec<PathBuf> {
    use burn::tensor::Device;
    use ssd_data::ClassList;
    use ssd_model::{CheckpointInfo, SsdConfig};
    let config = SsdConfig::small(4);
    let info = CheckpointInfo {
        classes: ClassList::new(vec!["cat".into(), "dog".into(), "bird".into()]).expect("names"),
        config: config.clone(),
        iteration: None,
    };
    config
        .init(&Device::default())
        .expect("small preset")
        .save_trained(&dir.join("small.bpk"), &info)
        .expect("checkpoint");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).expect("images");
    (0..count)
        .map(|i| {
            let path = images.join(format!("{i:03}.png"));
            image::RgbImage::from_fn(64 + i, 48, |x, y| {
                image::Rgb([(x * 3 + i) as u8, (y * 5) as u8, ((x + y) * i) as u8])
            })
            .save(&path)
            .expect("image");
            path
        })
        .collect()
}

fn detect(dir: &Path, input: &Path, extra: &[&str]) -> Command {
    let mut c = ssd();
    c.arg("detect")
        .arg("--trained-model")
        .arg(dir.join("small.bpk"))
        .arg("--test-image")
        .arg(input)
        .args(["--min-score", "0.05", "--output"])
        .arg(dir.join("drawn"))
        .args(extra);
    c
}

fn succeed(c: &mut Command) -> Output {
    let out = c.output().expect("ssd runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    out
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("results")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn three_shards_give_the_unsharded_lines_exactly_once() {
    let dir = scratch("shards");
    let images = job(&dir, 10);
    // A list file, relative paths, a comment and a blank line.
    let list = dir.join("list.txt");
    let mut listed = String::from("# the job\n\n");
    for p in &images {
        listed.push_str(&format!(
            "images/{}\n",
            p.file_name().and_then(|n| n.to_str()).expect("name")
        ));
    }
    std::fs::write(&list, listed).expect("list");
    let all = dir.join("all.jsonl");
    succeed(&mut detect(
        &dir,
        &list,
        &["--jsonl", all.to_str().expect("path")],
    ));
    let all = lines(&all);
    assert_eq!(all.len(), 10);
    // Without --draw, no annotated copies.
    assert!(!dir.join("drawn").exists());
    let mut sharded = Vec::new();
    for k in 0..3 {
        let out = dir.join(format!("shard{k}.jsonl"));
        let run = succeed(&mut detect(
            &dir,
            &list,
            &[
                "--shard",
                &format!("{k}/3"),
                "--jsonl",
                out.to_str().expect("path"),
            ],
        ));
        assert!(
            text(&run.stderr).contains(&format!("shard {k}/3")),
            "{}",
            text(&run.stderr)
        );
        sharded.extend(lines(&out));
    }
    assert_eq!(sharded.len(), all.len(), "each image exactly once");
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (all.iter().collect(), sharded.iter().collect());
    assert_eq!(a, b, "the same lines");
    // A Slurm array task picks its shard from the environment (ids 1..3 here).
    let out = dir.join("slurm.jsonl");
    succeed(
        detect(&dir, &list, &["--jsonl", out.to_str().expect("path")])
            .env("SLURM_ARRAY_TASK_ID", "2")
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "3"),
    );
    assert_eq!(lines(&out), lines(&dir.join("shard1.jsonl")));
    let bad = detect(&dir, &list, &["--shard", "3/3"])
        .output()
        .expect("runs");
    assert!(!bad.status.success() && text(&bad.stderr).contains("K must be in 0..N"));
    // The results never go into an input: the list file is left as it was.
    let before = std::fs::read(&list).expect("list");
    let bad = detect(&dir, &list, &["--jsonl", list.to_str().expect("path")])
        .output()
        .expect("runs");
    assert!(!bad.status.success(), "{}", text(&bad.stderr));
    assert_eq!(std::fs::read(&list).expect("list"), before);
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn a_killed_run_resumes_with_no_duplicate_and_no_missing_line() {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("kill");
    let images = job(&dir, 40);
    let results = dir.join("results.jsonl");
    let args = ["--jsonl", results.to_str().expect("path")];
    let mut child = detect(&dir, &dir.join("images"), &args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ssd starts");
    // Kill it once it has written a few lines.
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&results).map_or(0, |t| t.lines().count()) < 3 {
        assert!(
            started.elapsed().as_secs() < 120,
            "no results after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("exit status");
    assert_eq!(
        status.signal(),
        Some(9),
        "killed mid-run, not finished: {status:?}"
    );
    let before = lines(&results).len();
    assert!(before < images.len(), "{before} lines before the rerun");
    let rerun = succeed(&mut detect(&dir, &dir.join("images"), &args));
    assert!(
        text(&rerun.stderr).contains(&format!("({before} already there)")),
        "{}",
        text(&rerun.stderr)
    );
    let after = lines(&results);
    let names: Vec<String> = after
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
            v["image"].as_str().expect("image").to_owned()
        })
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(names.len(), images.len(), "no duplicate");
    assert_eq!(unique.len(), images.len(), "no missing image");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_and_corrupt_images_in_a_list_are_reported_and_the_job_goes_on() {
    let dir = scratch("bad");
    let images = job(&dir, 3);
    std::fs::write(dir.join("images/corrupt.png"), b"not a png").expect("corrupt");
    let list = dir.join("list.txt");
    std::fs::write(
        &list,
        "images/000.png\nimages/missing.png\nimages/corrupt.png\nimages/001.png\nimages/002.png\n",
    )
    .expect("list");
    let results = dir.join("results.jsonl");
    let out = detect(
        &dir,
        &list,
        &["--jsonl", results.to_str().expect("path"), "--draw"],
    )
    .output()
    .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("missing.png") && stderr.contains("corrupt.png"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 of 5 images could not be read"),
        "{stderr}"
    );
    assert_eq!(lines(&results).len(), images.len());
    // --draw writes the annotated copies too.
    assert!(dir.join("drawn/p_000.jpg").exists());
    let _ = std::fs::remove_dir_all(dir);
}
