//! `ssd backends`, run as the binary, with whichever backends it was built with: every compiled-in
//! backend either computes ("ok") or is reported unavailable in one line (`cuda` without an NVIDIA
//! driver), and asking for one that cannot run is a one-line error with a failing exit status,
//! never a panic. CI runs this with the default features and with `tch,wgpu,cuda`.

use std::process::{Command, Output};

use ssd_backend::{ALL_BACKENDS, Backend, BackendError};

fn ssd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ssd"))
        .args(args)
        .output()
        .expect("run ssd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_listing_names_every_backend_once() {
    let out = ssd(&["backends"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for b in ALL_BACKENDS {
        let lines: Vec<&str> = stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(b.name()))
            .collect();
        assert_eq!(lines.len(), 1, "{b}: {stdout}");
        let line = lines[0];
        match b.device() {
            Ok(_) => assert!(line.ends_with(": ok"), "{line}"),
            Err(BackendError::Unavailable { .. }) => {
                assert!(line.contains(" unavailable: "), "{line}")
            }
            Err(_) => assert!(line.contains("not compiled in"), "{line}"),
        }
    }
}

#[test]
fn a_backend_that_cannot_run_is_a_one_line_error() {
    for b in ALL_BACKENDS {
        let out = ssd(&["backends", "--backend", b.name()]);
        let stderr = text(&out.stderr);
        match b.device() {
            Ok(_) => assert!(out.status.success(), "{b}: {stderr}"),
            Err(e) => {
                assert_eq!(out.status.code(), Some(1), "{b}: {stderr}");
                // Exactly the error's one line: no panic message, no backtrace.
                assert_eq!(stderr, format!("error: {e}\n"), "{b}");
            }
        }
    }
}

/// The same error where a backend is used for work, before any file is read.
#[test]
fn detect_on_a_backend_that_cannot_run_fails_in_one_line() {
    let unusable: Vec<Backend> = ALL_BACKENDS
        .into_iter()
        .filter(|b| b.device().is_err())
        .collect();
    for b in unusable {
        let out = ssd(&[
            "detect",
            "--backend",
            b.name(),
            "--trained-model",
            "missing.bpk",
            "--test-image",
            "missing.jpg",
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{b}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{b}: {stderr}");
        assert!(stderr.contains(b.name()), "{b}: {stderr}");
    }
}
