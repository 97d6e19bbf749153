//! `ssd_model::onnx`: the exported files, and ONNX Runtime running them with our numbers.
//!
//! The ONNX Runtime tests need PyPI's `onnx` and `onnxruntime` (`bash
//! scripts/install-onnx-tools.sh`; the Python is `SSD_ONNX_PYTHON`, else
//! `$SSD_CACHE/onnx-venv/bin/python`) and run with `--ignored`, as CI does. Each exports the reduced
//! SSD300 of `tools/make_model_fixtures.py` and the small preset (batch norm, its statistics set
//! to random values), checks the file with `onnx.checker.check_model(full_check=True)` and runs it
//! through `tools/onnx_run.py` at batch 1 and 3: `loc`/`conf` within 1e-4 of ours (and of
//! PyTorch's on the fixture input), the `--postprocess` graph's detections the same as
//! `Detector`'s (the code of `ssd detect`): same count, boxes within 1e-4, scores within 1e-5.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use common::parity::{
    BATCH, SIZE, every_7th, fixture, hashed_unit, load, max_diff, reduced_config, values,
};
use common::torch_net::{BATCH as NET_BATCH, CLASSES, LITE, RESNET, TorchNet};
use ssd_data::ClassList;
use ssd_model::onnx::{OnnxError, OnnxOptions, write_onnx};
use ssd_model::{Detection, Detector, PostProcessConfig, Ssd, SsdConfig, read_pth_tensors};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssd-onnx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn classes(n: usize) -> ClassList {
    ClassList::new((1..n).map(|i| format!("class{i}")).collect()).expect("class names")
}

/// The reduced SSD300 of the PyTorch fixture, as a detector.
fn reduced() -> Detector {
    let device = Device::default();
    Detector::new(load(&device, "model.pth"), reduced_config(6), classes(6)).expect("detector")
}

/// The small preset (batch norm after every conv) with random weights and random batch-norm
/// scales, shifts and running statistics, so that each of them shows in the outputs.
fn small() -> Detector {
    let device = Device::default();
    let config = SsdConfig::small(6);
    let mut model = config.init(&device).expect("small preset");
    let Ssd::Vgg(vgg) = &mut model else {
        unreachable!("a VGG network")
    };
    for (i, norm) in vgg.norms.iter_mut().enumerate() {
        let c = norm.gamma.dims()[0];
        let unit =
            |salt: u64| Tensor::<1>::from_data(TensorData::new(hashed_unit(c, salt), [c]), &device);
        let salt = 1000 * i as u64;
        norm.gamma = Param::from_tensor(unit(salt).mul_scalar(0.5).add_scalar(1.0));
        norm.beta = Param::from_tensor(unit(salt + 1).mul_scalar(0.2));
        norm.running_mean = RunningState::new(unit(salt + 2).mul_scalar(0.3));
        norm.running_var = RunningState::new(unit(salt + 3).mul_scalar(0.4).add_scalar(1.0));
    }
    Detector::new(model, config, classes(6)).expect("detector")
}

#[test]
fn export_writes_atomically_and_refuses_what_it_should() {
    let dir = temp_dir("errors");
    let detector = small();
    let path = dir.join("small.onnx");
    let summary = write_onnx(&detector, &path, &OnnxOptions::default()).expect("export");
    assert_eq!(summary.outputs, ["loc", "conf"]);
    assert_eq!(
        summary.bytes as u64,
        std::fs::metadata(&path).expect("file").len()
    );
    let pp = OnnxOptions {
        post_process: true,
        overwrite: true,
    };
    let summary = write_onnx(&detector, &path, &pp).expect("overwrite");
    assert_eq!(
        summary.outputs,
        ["num_detections", "boxes", "scores", "labels"]
    );
    let err = write_onnx(&detector, &path, &OnnxOptions::default()).expect_err("exists");
    assert!(
        matches!(
            err,
            OnnxError::Output(ssd_data::DataError::OutputExists { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("small.onnx"), "{err}");
    let missing = dir.join("no/such/folder/m.onnx");
    let err = write_onnx(&detector, &missing, &OnnxOptions::default()).expect_err("no folder");
    assert!(err.to_string().contains("no/such/folder"), "{err}");
    let bad = detector.with_post_process(PostProcessConfig {
        nms_overlap: 0.0,
        ..PostProcessConfig::default()
    });
    let err = write_onnx(&bad, &dir.join("bad.onnx"), &pp).expect_err("nms_overlap 0");
    assert!(err.to_string().contains("nms_overlap"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(left, ["small.onnx"], "no temporary or partial file is left");
    let _ = std::fs::remove_dir_all(dir);
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SSD_ONNX_PYTHON") {
        return p.into();
    }
    let cache = std::env::var_os("SSD_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ssd"),
        PathBuf::from,
    );
    cache.join("onnx-venv/bin/python")
}

/// One output of ONNX Runtime: values (as f64) and shape.
type Output = (Vec<f64>, Vec<usize>);

/// Runs `model` on `input` with ONNX Runtime (`tools/onnx_run.py`, which checks the file first).
fn run_ort(model: &Path, input: &[f32], shape: [usize; 4]) -> HashMap<String, Output> {
    let dir = model.with_extension("out");
    std::fs::create_dir_all(&dir).expect("output dir");
    let input_file = dir.join("images.f32");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_file, bytes).expect("input");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/onnx_run.py");
    let shape_arg = shape.map(|d| d.to_string()).join(",");
    let out = Command::new(python())
        .arg(&script)
        .arg(model)
        .arg(&input_file)
        .arg(&shape_arg)
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install it with `bash scripts/install-onnx-tools.sh` or set \
                 SSD_ONNX_PYTHON",
                python().display()
            )
        });
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("outputs.json")).expect("listing"))
            .expect("listing JSON");
    let keys = listing["metadata_keys"].to_string();
    for key in [
        "classes",
        "mean_rgb",
        "std_rgb",
        "priors",
        "ssd_config",
        "variances",
    ] {
        assert!(keys.contains(key), "metadata {key} missing: {keys}");
    }
    assert_eq!(listing["opset"], serde_json::json!([17]));
    let mut outputs = HashMap::new();
    for o in listing["outputs"].as_array().expect("outputs") {
        let name = o["name"].as_str().expect("name").to_owned();
        let shape: Vec<usize> = o["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        let raw = std::fs::read(dir.join(format!("{name}.bin"))).expect("output file");
        let v: Vec<f64> = match o["dtype"].as_str() {
            Some("float32") => raw
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            Some("int64") => raw
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")) as f64)
                .collect(),
            other => panic!("output {name}: dtype {other:?}"),
        };
        assert_eq!(v.len(), shape.iter().product::<usize>(), "{name}");
        outputs.insert(name, (v, shape));
    }
    outputs
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// The network input for a batch: the fixture's hashed values, times `scale`.
fn input(detector: &Detector, batch: usize, salt: u64, scale: f32) -> (Vec<f32>, [usize; 4]) {
    let s = detector.config().input_size();
    let v = hashed_unit(batch * 3 * s * s, salt)
        .into_iter()
        .map(|x| x * scale)
        .collect();
    (v, [batch, 3, s, s])
}

fn tensor(values: &[f32], shape: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), &Device::default())
}

/// How the post-processing graph's detections compare with ours.
#[derive(Debug, Default)]
struct Matched {
    ours: usize,
    theirs: usize,
    unmatched: Vec<String>,
    box_diff: f32,
    score_diff: f32,
}

/// Matches each of our detections (normalised: image size 1x1) to one of ONNX Runtime's with
/// the same label, box within 1e-4 and score within 1e-5.
fn match_detections(ours: &[Detection], ort: &HashMap<String, Output>, image: usize) -> Matched {
    let count = ort["num_detections"].0[image] as usize;
    let per_image = ort["scores"].1[1];
    let theirs: Vec<Detection> = (0..count)
        .map(|j| {
            let r = image * per_image + j;
            let b = &ort["boxes"].0[r * 4..r * 4 + 4];
            Detection {
                label: ort["labels"].0[r] as usize,
                score: ort["scores"].0[r] as f32,
                bbox: [b[0] as f32, b[1] as f32, b[2] as f32, b[3] as f32],
            }
        })
        .collect();
    // The padding is zero.
    for j in count..per_image {
        let r = image * per_image + j;
        assert_eq!(ort["scores"].0[r], 0.0);
        assert_eq!(ort["labels"].0[r], 0.0);
    }
    let mut used = vec![false; theirs.len()];
    let mut m = Matched {
        ours: ours.len(),
        theirs: theirs.len(),
        ..Matched::default()
    };
    for d in ours {
        let found = theirs.iter().enumerate().position(|(j, t)| {
            !used[j]
                && t.label == d.label
                && (t.score - d.score).abs() <= 1e-5
                && max_diff(&t.bbox, &d.bbox) <= 1e-4
        });
        match found {
            Some(j) => {
                used[j] = true;
                m.box_diff = m.box_diff.max(max_diff(&theirs[j].bbox, &d.bbox));
                m.score_diff = m.score_diff.max((theirs[j].score - d.score).abs());
            }
            None => m.unmatched.push(format!("{d:?}")),
        }
    }
    m
}

/// Plain and post-processing exports of `detector` against ours at batch 1 and 3.
fn check_with_onnxruntime(name: &str, detector: Detector, scale: f32) {
    let dir = temp_dir(name);
    let plain = dir.join(format!("{name}.onnx"));
    write_onnx(&detector, &plain, &OnnxOptions::default()).expect("export");
    let post = PostProcessConfig::default(); // the paper's test setting: score 0.01, top 400
    let detector = detector.with_post_process(post);
    let pp = dir.join(format!("{name}_postprocess.onnx"));
    let options = OnnxOptions {
        post_process: true,
        overwrite: false,
    };
    write_onnx(&detector, &pp, &options).expect("export with post-processing");
    for batch in [1, 3] {
        let (x, shape) = input(&detector, batch, batch as u64 + 7, scale);
        let ort = run_ort(&plain, &x, shape);
        let (loc, conf) = detector.model().expect("burn").forward(tensor(&x, shape));
        assert_eq!(ort["loc"].1, loc.dims().to_vec());
        assert_eq!(ort["conf"].1, conf.dims().to_vec());
        let loc_diff = max_diff(&f32s(&ort["loc"].0), &values(loc));
        let conf_diff = max_diff(&f32s(&ort["conf"].0), &values(conf));
        println!("{name} batch {batch}: |loc - ORT| {loc_diff:.2e}, |conf - ORT| {conf_diff:.2e}");
        assert!(
            loc_diff <= 1e-4 && conf_diff <= 1e-4,
            "{name} batch {batch}"
        );

        let ort = run_ort(&pp, &x, shape);
        let ours = detector
            .detect_tensor(tensor(&x, shape), &vec![[1, 1]; batch])
            .expect("detect");
        for (image, ours) in ours.iter().enumerate() {
            let m = match_detections(ours, &ort, image);
            println!(
                "{name} batch {batch} image {image}: {} detections (ORT {}), max |box| {:.2e}, \
                 max |score| {:.2e}, unmatched {}",
                m.ours,
                m.theirs,
                m.box_diff,
                m.score_diff,
                m.unmatched.len()
            );
            assert!(m.ours > 0, "the test needs detections");
            assert_eq!(
                m.ours, m.theirs,
                "{name} batch {batch} image {image}: count"
            );
            assert!(
                m.unmatched.is_empty(),
                "{name}: unmatched {:?}",
                m.unmatched
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs onnxruntime: bash scripts/install-onnx-tools.sh"]
fn onnxruntime_runs_the_reduced_ssd300_with_our_and_pytorchs_numbers() {
    let detector = reduced();
    // PyTorch's outputs for the fixture input (batch 2), every 7th prior.
    let dir = temp_dir("reduced-pytorch");
    let path = dir.join("reduced.onnx");
    write_onnx(&detector, &path, &OnnxOptions::default()).expect("export");
    let x = hashed_unit(BATCH * 3 * SIZE * SIZE, 0);
    let ort = run_ort(&path, &x, [BATCH, 3, SIZE, SIZE]);
    let expected = read_pth_tensors(&fixture("expected.pth")).expect("expected outputs");
    let as_tensor = |o: &Output| {
        let s = &o.1;
        Tensor::<3>::from_data(
            TensorData::new(f32s(&o.0), [s[0], s[1], s[2]]),
            &Device::default(),
        )
    };
    let loc_diff = max_diff(&every_7th(as_tensor(&ort["loc"])), &expected["loc_sub"].0);
    let conf_diff = max_diff(&every_7th(as_tensor(&ort["conf"])), &expected["conf_sub"].0);
    println!("reduced SSD300 vs PyTorch: |loc| {loc_diff:.2e}, |conf| {conf_diff:.2e}");
    assert!(loc_diff <= 1e-4 && conf_diff <= 1e-4);
    let _ = std::fs::remove_dir_all(dir);
    check_with_onnxruntime("reduced", detector, 1.0);
}

#[test]
#[ignore = "needs onnxruntime: bash scripts/install-onnx-tools.sh"]
fn onnxruntime_runs_the_small_preset_with_our_numbers() {
    check_with_onnxruntime("small", small(), 60.0);
}

/// A fixture network of `common::torch_net` in ONNX Runtime, against its PyTorch reference's
/// outputs on the fixture input and against ours.
fn onnxruntime_matches_the_reference(net: &TorchNet, name: &str) {
    let device = Device::default();
    let (model, _) = net.load(&device, "model.pth");
    let detector = Detector::new(model, net.reduced_config(), classes(CLASSES)).expect("detector");
    let dir = temp_dir(&format!("{name}-reference"));
    let path = dir.join(format!("{name}.onnx"));
    write_onnx(&detector, &path, &OnnxOptions::default()).expect("export");
    let s = net.size;
    let x = hashed_unit(NET_BATCH * 3 * s * s, 0);
    let ort = run_ort(&path, &x, [NET_BATCH, 3, s, s]);
    let expected = net.expected();
    let as_tensor = |o: &Output| {
        let s = &o.1;
        Tensor::<3>::from_data(
            TensorData::new(f32s(&o.0), [s[0], s[1], s[2]]),
            &Device::default(),
        )
    };
    let loc_diff = max_diff(&every_7th(as_tensor(&ort["loc"])), &expected["loc_sub"].0);
    let conf_diff = max_diff(&every_7th(as_tensor(&ort["conf"])), &expected["conf_sub"].0);
    println!("{name} vs its PyTorch reference: |loc| {loc_diff:.2e}, |conf| {conf_diff:.2e}");
    assert!(loc_diff <= 1e-4 && conf_diff <= 1e-4);
    let _ = std::fs::remove_dir_all(dir);
    check_with_onnxruntime(name, detector, 1.0);
}

/// SSDLite320 of `tools/make_lite_fixtures.py` (width 0.25, random batch-norm statistics): its
/// depthwise convolutions, hard-swish, squeeze-excitation and `[-1, 1]` input in ONNX Runtime,
/// against torchvision's outputs.
#[test]
#[ignore = "needs onnxruntime: bash scripts/install-onnx-tools.sh"]
fn onnxruntime_runs_ssdlite_with_torchvisions_and_our_numbers() {
    onnxruntime_matches_the_reference(&LITE, "ssdlite");
}

/// NVIDIA's SSD300 of `tools/make_resnet_fixtures.py` (stem width 16): residual sums, the
/// max-pool, batch norms and ImageNet's mean and std in ONNX Runtime, against the reference.
#[test]
#[ignore = "needs onnxruntime: bash scripts/install-onnx-tools.sh"]
fn onnxruntime_runs_the_resnet_ssd_with_the_references_and_our_numbers() {
    onnxruntime_matches_the_reference(&RESNET, "resnet");
}

/// `Detector` on the ONNX Runtime engine (the `onnxruntime` feature; the library found as
/// `ssd detect` finds it) against the same detector on Burn: SSDLite320 and the ResNet SSD from
/// the network exported in memory, the same detections (count, classes, boxes within 1e-3 of
/// the image's pixels, scores within 1e-5); and an exported file's classes and COCO category ids
/// back from its metadata.
#[cfg(feature = "onnxruntime")]
#[test]
#[ignore = "needs onnxruntime: bash scripts/install-onnx-tools.sh"]
fn the_onnxruntime_engine_gives_burns_detections_and_reads_the_files_metadata() {
    use ssd_model::{Engine, OrtOptions};
    let engine = Engine::OnnxRuntime(OrtOptions::default());
    let device = Device::default();
    let images: Vec<image::RgbImage> = (0..3u32)
        .map(|i| {
            image::RgbImage::from_fn(200 + 40 * i, 150, |x, y| {
                image::Rgb([(x * 7 + i) as u8, (y * 3) as u8, ((x ^ y) * 5) as u8])
            })
        })
        .collect();
    let loose = PostProcessConfig {
        min_score: 0.02,
        ..PostProcessConfig::default()
    };
    for net in [&LITE, &RESNET] {
        let (model, _) = net.load(&device, "model.pth");
        let burn = Detector::new(model, net.reduced_config(), classes(CLASSES))
            .expect("detector")
            .with_post_process(loose);
        let expected = burn.detect(&images).expect("burn");
        let ort = burn.into_engine(&engine).expect("onnxruntime engine");
        assert!(ort.model().is_none() && ort.engine().starts_with("onnxruntime cpu fp32"));
        let found = ort.detect(&images).expect("onnxruntime");
        let mut compared = 0;
        for (a, b) in expected.iter().zip(&found) {
            assert_eq!(a.len(), b.len(), "detection count");
            for (p, q) in a.iter().zip(b) {
                assert_eq!(p.label, q.label);
                assert!((p.score - q.score).abs() <= 1e-5, "{p:?} {q:?}");
                for k in 0..4 {
                    assert!((p.bbox[k] - q.bbox[k]).abs() <= 1e-3, "{p:?} {q:?}");
                }
                compared += 1;
            }
        }
        assert!(compared > 0, "random weights still detect something");
    }
    // A COCO-trained model's category ids go into the file and come back from it.
    let dir = temp_dir("engine-metadata");
    let path = dir.join("coco.onnx");
    let ids = vec![3, 7, 18, 44, 90];
    let with_ids = classes(6).with_category_ids(ids.clone()).expect("ids");
    let detector = Detector::new(
        small().model().expect("burn").clone(),
        SsdConfig::small(6),
        with_ids,
    )
    .expect("detector");
    write_onnx(&detector, &path, &OnnxOptions::default()).expect("export");
    let loaded = Detector::load_on(&path, None, &device, &engine).expect("the .onnx file");
    assert_eq!(loaded.classes().names(), detector.classes().names());
    assert_eq!(loaded.classes().category_ids(), Some(&ids[..]));
    assert_eq!(loaded.config(), detector.config());
    let image = &images[..1];
    assert_eq!(
        loaded.detect(image).expect("file").len(),
        detector.detect(image).expect("burn").len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
