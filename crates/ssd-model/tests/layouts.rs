//! The key maps against real state-dict layouts: keys and shapes of torchvision's `ssd300_vgg16`
//! and `vgg16` (from torchvision itself) and of amdegroot's SSD300 and `vgg16_reducedfc.pth`
//! layouts (`tools/make_layout_fixtures.py`), checked against `SsdConfig::ssd300(21)` without any
//! weight values.

use burn::tensor::Device;
use serde_json::Value;
use ssd_model::{LoadMode, LoadProblem, PthLayout, Ssd, SsdConfig, StateDictError};

fn layouts() -> Value {
    serde_json::from_str(include_str!("fixtures/layouts.json")).expect("fixture is JSON")
}

fn entries(v: &Value) -> Vec<(String, Vec<usize>)> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|e| {
            let key = e[0].as_str().expect("key").to_owned();
            let shape = e[1]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            (key, shape)
        })
        .collect()
}

fn ssd300() -> Ssd {
    SsdConfig::ssd300(21).init(&Device::flex()).expect("valid")
}

fn target<'a>(mapping: &'a [(String, String)], key: &str) -> &'a str {
    mapping
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("<unmapped>")
}

#[test]
fn full_layouts_fill_every_parameter() {
    let f = layouts();
    let model = ssd300();
    let tv = model
        .check_state_dict(&entries(&f["torchvision_ssd300_vgg16"]), LoadMode::Full)
        .expect("torchvision ssd300_vgg16 maps");
    assert_eq!(tv.layout, PthLayout::Torchvision);
    assert_eq!(tv.loaded.len(), 71);
    for (key, ours) in [
        ("backbone.features.21.weight", "vgg.9.weight"),
        ("backbone.extra.0.1.weight", "vgg.10.weight"),
        ("backbone.extra.0.5.bias", "vgg.12.bias"),
        ("backbone.extra.0.7.1.weight", "vgg.13.weight"),
        ("backbone.extra.0.7.3.weight", "vgg.14.weight"),
        ("backbone.extra.1.0.weight", "extras.0.weight"),
        ("backbone.extra.4.2.weight", "extras.7.weight"),
        ("backbone.scale_weight", "l2norm.weight"),
        ("head.regression_head.module_list.3.weight", "loc.3.weight"),
        ("head.classification_head.module_list.5.bias", "conf.5.bias"),
    ] {
        assert_eq!(target(&tv.mapping, key), ours, "{key}");
    }
    let ad = model
        .check_state_dict(&entries(&f["amdegroot_ssd300"]), LoadMode::Full)
        .expect("amdegroot maps");
    assert_eq!(ad.layout, PthLayout::Amdegroot);
    assert_eq!(ad.loaded.len(), 71);
    assert_eq!(target(&ad.mapping, "vgg.21.weight"), "vgg.9.weight");
    assert_eq!(target(&ad.mapping, "vgg.33.bias"), "vgg.14.bias");
    assert_eq!(target(&ad.mapping, "L2Norm.weight"), "l2norm.weight");
}

#[test]
fn backbones_fill_the_vgg_and_decimate_fc6_fc7() {
    let f = layouts();
    let model = ssd300();
    let vgg = model
        .check_state_dict(&entries(&f["torchvision_vgg16"]), LoadMode::Backbone)
        .expect("torchvision vgg16 maps");
    assert_eq!(vgg.layout, PthLayout::TorchvisionVgg16);
    assert_eq!(vgg.loaded.len(), 30);
    assert!(vgg.loaded.iter().all(|n| n.starts_with("vgg.")));
    assert_eq!(target(&vgg.mapping, "classifier.0.weight"), "vgg.13.weight");
    assert_eq!(target(&vgg.mapping, "classifier.3.bias"), "vgg.14.bias");
    assert_eq!(
        vgg.ignored,
        vec![
            "classifier.6.bias".to_owned(),
            "classifier.6.weight".to_owned()
        ]
    );
    let reduced = model
        .check_state_dict(
            &entries(&f["amdegroot_vgg16_reducedfc"]),
            LoadMode::Backbone,
        )
        .expect("vgg16_reducedfc maps");
    assert_eq!(reduced.layout, PthLayout::AmdegrootReducedFc);
    assert_eq!(reduced.loaded.len(), 30);
    // A backbone is not a full model.
    let err = model
        .check_state_dict(&entries(&f["torchvision_vgg16"]), LoadMode::Full)
        .expect_err("backbone only");
    assert!(
        matches!(
            err,
            StateDictError::BackboneOnly(PthLayout::TorchvisionVgg16)
        ),
        "{err}"
    );
    assert!(err.to_string().contains("backbone"), "{err}");
}

#[test]
fn lufficc_layout_from_its_documented_names() {
    // lufficc/SSD's names (REFERENCES.md §8), built from the amdegroot layout.
    let f = layouts();
    let renamed: Vec<(String, Vec<usize>)> = entries(&f["amdegroot_ssd300"])
        .into_iter()
        .map(|(k, s)| {
            let k = if k == "L2Norm.weight" {
                "backbone.l2_norm.weight".to_owned()
            } else if let Some(rest) = k.strip_prefix("vgg.") {
                format!("backbone.vgg.{rest}")
            } else if let Some(rest) = k.strip_prefix("extras.") {
                format!("backbone.extras.{rest}")
            } else if let Some(rest) = k.strip_prefix("loc.") {
                format!("box_head.predictor.reg_headers.{rest}")
            } else if let Some(rest) = k.strip_prefix("conf.") {
                format!("box_head.predictor.cls_headers.{rest}")
            } else {
                k
            };
            (k, s)
        })
        .collect();
    let report = ssd300()
        .check_state_dict(&renamed, LoadMode::Full)
        .expect("lufficc maps");
    assert_eq!(report.layout, PthLayout::Lufficc);
    assert_eq!(report.loaded.len(), 71);
}

#[test]
fn every_problem_is_named() {
    let f = layouts();
    let mut bad = entries(&f["torchvision_ssd300_vgg16"]);
    // COCO's 91 classes in one head, a dropped tensor and a stray one.
    for (k, s) in bad.iter_mut() {
        if k == "head.classification_head.module_list.0.weight" {
            s[0] = 4 * 91;
        }
    }
    bad.retain(|(k, _)| k != "backbone.extra.2.0.bias");
    bad.push(("backbone.extra.9.0.weight".to_owned(), vec![1, 1, 1, 1]));
    let err = ssd300()
        .check_state_dict(&bad, LoadMode::Full)
        .expect_err("three problems");
    let StateDictError::Mismatch { problems, .. } = &err else {
        panic!("expected a mismatch, got {err}");
    };
    // The mis-shaped head is also reported as a missing parameter.
    assert_eq!(problems.len(), 4, "{err}");
    assert!(problems.contains(&LoadProblem::Missing {
        name: "extras.2.bias".to_owned(),
        expected: vec![128],
    }));
    let err = err.to_string();
    assert!(err.contains("head.classification_head.module_list.0.weight -> conf.0.weight: expected shape [84, 512, 3, 3], found [364, 512, 3, 3]"), "{err}");
    assert!(
        err.contains("extras.2.bias: missing (expected shape [128])"),
        "{err}"
    );
    assert!(err.contains("backbone.extra.9.0.weight"), "{err}");
}

#[test]
fn absurd_class_counts_are_refused_before_anything_is_allocated() {
    // A small file can declare any shape: 50,001 classes would make an 11 GB head.
    let mut declared = entries(&layouts()["amdegroot_ssd300"]);
    for (k, s) in declared.iter_mut() {
        if k.starts_with("conf.") && k.ends_with(".weight") {
            s[0] = s[0] / 21 * 50_001;
        }
    }
    let err = SsdConfig::from_state_dict(&declared).expect_err("absurd");
    assert!(
        matches!(err, StateDictError::TooLarge { value: 50_001, .. }),
        "{err}"
    );
    let voc = SsdConfig::from_state_dict(&entries(&layouts()["amdegroot_ssd300"])).expect("VOC");
    assert_eq!(voc.num_classes, 21);
}
