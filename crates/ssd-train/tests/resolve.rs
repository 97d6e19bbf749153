//! The rules of a run's settings, at the library level where they live: checkpoint < settings
//! file < overrides, the recipe presets, the names of new runs, what a resume may change, the
//! classes from the data, and every setting checked before the data is read.

use std::path::{Path, PathBuf};

use ssd_data::{ClassList, SyntheticConfig, SyntheticFormat, write_synthetic_as};
use ssd_model::SsdConfig;
use ssd_train::{
    Recipe, RunRequest, TrainConfig, TrainError, TrainOverrides, TrainState, read_settings_file,
};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-resolve-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// A checkpoint folder holding only its `train.json` (what resolution reads of it).
fn checkpoint(dir: &Path, classes: &[&str], ids: Option<Vec<u64>>) -> PathBuf {
    let folder = dir.join("weights/run_4");
    std::fs::create_dir_all(&folder).expect("folder");
    let state = TrainState {
        iteration: 4,
        config: TrainConfig {
            dataroot: vec![dir.join("data")],
            batch_size: 8,
            iterations: 10,
            lr: 0.5,
            gamma: 0.3,
            model_save_name: "run".into(),
            ..TrainConfig::default()
        },
        model: SsdConfig::small(classes.len() + 1),
        classes: classes.iter().map(|c| (*c).to_owned()).collect(),
        category_ids: ids,
    };
    std::fs::write(
        folder.join("train.json"),
        serde_json::to_string(&state).expect("json"),
    )
    .expect("train.json");
    folder
}

#[test]
fn a_resumed_run_takes_the_checkpoint_then_the_file_then_the_overrides() {
    let dir = scratch("precedence");
    let resume = checkpoint(&dir, &["cat", "dog"], Some(vec![3, 9]));
    let file = dir.join("settings.toml");
    std::fs::write(&file, "lr = 1\nbatch-size = 4\n").expect("file");
    let request = RunRequest {
        resume: Some(resume.clone()),
        settings_file: Some(file),
        overrides: TrainOverrides {
            lr: Some(0.125),
            ..TrainOverrides::default()
        },
        recipe: Recipe::Preset,
    };
    let run = request.resolve().expect("resolves");
    assert_eq!(run.config.lr, 0.125, "the override wins");
    assert_eq!(
        run.config.batch_size, 4,
        "the file wins over the checkpoint"
    );
    assert_eq!(run.config.gamma, 0.3, "the checkpoint's, not the default");
    assert_eq!(run.config.iterations, 10);
    assert_eq!(
        run.config.model_save_name, "run",
        "a resumed run keeps its name"
    );
    assert_eq!(run.model, SsdConfig::small(3));
    assert_eq!(run.classes.names(), ["cat", "dog"]);
    assert_eq!(
        run.classes.category_ids(),
        Some(&[3u64, 9][..]),
        "and its ids"
    );
    assert_eq!(run.resume.as_deref(), Some(resume.as_path()));

    // A resume may repeat the network and the classes, not change them.
    let names = dir.join("classes.txt");
    std::fs::write(&names, "cat\ndog\n").expect("classes");
    let same = RunRequest {
        resume: Some(resume.clone()),
        overrides: TrainOverrides {
            model: Some("small".into()),
            classes: Some(names.clone()),
            ..TrainOverrides::default()
        },
        ..RunRequest::default()
    };
    assert!(same.resolve().is_ok());
    std::fs::write(&names, "cat\ncow\n").expect("classes");
    let err = same.resolve().expect_err("other classes");
    assert!(err.to_string().contains("--classes differs"), "{err}");
    let other_model = RunRequest {
        resume: Some(resume),
        overrides: TrainOverrides {
            model: Some("ssd300".into()),
            ..TrainOverrides::default()
        },
        ..RunRequest::default()
    };
    let err = other_model.resolve().expect_err("another network");
    assert!(
        matches!(err, TrainError::Resume { .. }) && err.to_string().contains("--model ssd300"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_new_run_starts_from_its_recipe_and_is_named_after_its_model() {
    let coco = RunRequest {
        overrides: TrainOverrides {
            dataroot: Some(vec!["unused".into()]),
            model: Some("ssd512-coco".into()),
            ..TrainOverrides::default()
        },
        ..RunRequest::default()
    };
    let config = coco.config().expect("valid");
    assert_eq!(
        (
            config.batch_size,
            config.iterations,
            config.lr_decay.clone()
        ),
        (24, 520_000, vec![360_000, 480_000]),
        "lufficc's COCO schedule for SSD512"
    );
    assert_eq!(config.model_save_name, "ssd512-coco");
    let named = RunRequest {
        overrides: TrainOverrides {
            model_save_name: Some("mine".into()),
            ..coco.overrides.clone()
        },
        ..RunRequest::default()
    };
    assert_eq!(named.config().expect("valid").model_save_name, "mine");

    let quick = RunRequest {
        overrides: TrainOverrides {
            dataroot: Some(vec!["unused".into()]),
            iterations: Some(300),
            ..TrainOverrides::default()
        },
        recipe: Recipe::Quickstart,
        ..RunRequest::default()
    };
    let config = quick.config().expect("valid");
    assert_eq!(
        config.lr_decay,
        vec![165, 240],
        "scaled to the iterations asked for"
    );
    assert_eq!((config.warmup, config.save_every), (60, 75));
    assert_eq!(config.model_save_name, "quickstart");
    assert_eq!(config.lr, 0.02);
}

#[test]
fn every_setting_is_checked_before_the_data_is_read() {
    let request = RunRequest {
        overrides: TrainOverrides {
            dataroot: Some(vec!["/nonexistent/VOC2007".into()]),
            lr: Some(f64::NAN),
            ..TrainOverrides::default()
        },
        ..RunRequest::default()
    };
    let err = request.resolve().expect_err("NaN lr");
    assert!(
        matches!(&err, TrainError::Setting { name: "lr", .. }),
        "the setting, not the missing data: {err}"
    );
}

#[test]
fn settings_files_are_typed_and_unknown_keys_named() {
    let dir = scratch("files");
    let toml = dir.join("train.toml");
    std::fs::write(
        &toml,
        "batch-size = 8\nlr-decay = [5, 6]\nmodel = \"small\"\nlr = 1\n",
    )
    .expect("write");
    let file = read_settings_file(&toml).expect("toml");
    assert_eq!(file.batch_size, Some(8));
    assert_eq!(file.lr_decay, Some(vec![5, 6]));
    assert_eq!(file.lr, Some(1.0), "a whole number for a decimal setting");
    assert_eq!(file.model.as_deref(), Some("small"));
    assert_eq!(file.iterations, None, "keys not given stay unset");
    let json = dir.join("train.json");
    std::fs::write(&json, r#"{"batch-sise": 8}"#).expect("write");
    let err = read_settings_file(&json).expect_err("typo in a key");
    assert!(
        err.to_string().contains("batch-sise") && err.to_string().contains("train.json"),
        "{err}"
    );
    std::fs::write(&json, "[1, 2]").expect("write");
    assert!(read_settings_file(&json).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_new_run_takes_the_datasets_own_classes_and_opens_it_once() {
    let dir = scratch("classes");
    let config = SyntheticConfig::large_objects(4, 2);
    for (format, tag) in [
        (SyntheticFormat::Voc, "voc"),
        (SyntheticFormat::Coco, "coco"),
    ] {
        let data = dir.join(tag);
        write_synthetic_as(&data, &config, format).expect("data");
        let run = RunRequest {
            overrides: TrainOverrides {
                dataroot: Some(vec![data]),
                model: Some("small".into()),
                ..TrainOverrides::default()
            },
            ..RunRequest::default()
        }
        .resolve()
        .expect("resolves");
        assert_eq!(
            run.classes.names(),
            ssd_data::SYNTHETIC_CLASSES,
            "{tag}: the root's classes.txt or the file's categories"
        );
        assert_eq!(
            run.classes.category_ids().map(<[u64]>::to_vec),
            (format == SyntheticFormat::Coco).then(|| ssd_data::SYNTHETIC_COCO_IDS.to_vec())
        );
        assert_eq!(run.model.num_classes, 6);
        let settings = run.into_settings(vec![burn::tensor::Device::default()], true);
        assert!(settings.dataset.is_some(), "{tag}: handed to the trainer");
    }
    // A class list asked for is the list; the trainer opens the data with it.
    let names = dir.join("names.txt");
    std::fs::write(&names, "a\nb\n").expect("names");
    let run = RunRequest {
        overrides: TrainOverrides {
            dataroot: Some(vec![dir.join("voc")]),
            classes: Some(names),
            model: Some("small".into()),
            ..TrainOverrides::default()
        },
        ..RunRequest::default()
    }
    .resolve()
    .expect("resolves");
    assert_eq!(
        run.classes,
        ClassList::new(vec!["a".into(), "b".into()]).expect("list")
    );
    let _ = std::fs::remove_dir_all(dir);
}
