//! What the CLI tests share: comparing two runs' detections.

#![allow(dead_code, unreachable_pub)]

/// Asserts that two answers for the same images (JSON objects with `image` and `detections`,
/// as `ssd detect` writes them and `ssd serve` answers) hold the same detections: the same
/// count per image, the same classes in the same order, boxes within `box_tol` pixels and
/// scores within `score_tol`. Images are matched by name; returns the detections compared.
pub fn assert_same_detections(
    a: &[serde_json::Value],
    b: &[serde_json::Value],
    box_tol: f64,
    score_tol: f64,
) -> usize {
    use std::collections::BTreeMap;
    let by_name = |v: &[serde_json::Value]| -> BTreeMap<String, serde_json::Value> {
        v.iter()
            .map(|l| (l["image"].as_str().unwrap_or("").to_owned(), l.clone()))
            .collect()
    };
    let (a, b) = (by_name(a), by_name(b));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same images"
    );
    let mut compared = 0;
    for (name, x) in &a {
        let (dx, dy) = (
            x["detections"].as_array().expect("detections"),
            b[name]["detections"].as_array().expect("detections"),
        );
        assert_eq!(dx.len(), dy.len(), "{name}: detection count");
        for (i, (p, q)) in dx.iter().zip(dy).enumerate() {
            assert_eq!(p["label"], q["label"], "{name} #{i}: class");
            let score = (p["score"].as_f64().unwrap_or(f64::NAN)
                - q["score"].as_f64().unwrap_or(f64::NAN))
            .abs();
            assert!(
                score <= score_tol,
                "{name} #{i}: scores differ by {score:e}"
            );
            for k in 0..4 {
                let d = (p["bbox"][k].as_f64().unwrap_or(f64::NAN)
                    - q["bbox"][k].as_f64().unwrap_or(f64::NAN))
                .abs();
                assert!(d <= box_tol, "{name} #{i}: box differs by {d:e} px");
            }
            compared += 1;
        }
    }
    compared
}

/// The JSON lines of a file.
pub fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}
