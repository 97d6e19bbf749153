//! What the CLI tests share: comparing two runs' detections.

#![allow(dead_code, unreachable_pub)]

/// Asserts that two answers for the same images (JSON objects with `image` and `detections`,
/// as `ssd detect` writes them and `ssd serve` answers) hold the same detections: the same
/// count per image, and for each detection of `a` one of `b` of the same class with its box
/// within `box_tol` pixels and its score within `score_tol`. Detections are paired regardless of
/// order, since boxes whose scores tie within the float order of the sums (Flex's parallel sums
/// change it from run to run) may come in either order. Images are matched by name; returns the
/// detections compared.
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
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let close = |p: &serde_json::Value, q: &serde_json::Value| {
        p["label"] == q["label"]
            && (number(&p["score"]) - number(&q["score"])).abs() <= score_tol
            && (0..4).all(|k| (number(&p["bbox"][k]) - number(&q["bbox"][k])).abs() <= box_tol)
    };
    let mut compared = 0;
    for (name, x) in &a {
        let (dx, dy) = (
            x["detections"].as_array().expect("detections"),
            b[name]["detections"].as_array().expect("detections"),
        );
        assert_eq!(dx.len(), dy.len(), "{name}: detection count");
        let mut used = vec![false; dy.len()];
        for (i, p) in dx.iter().enumerate() {
            let found = (0..dy.len()).find(|&j| !used[j] && close(p, &dy[j]));
            let j = found.unwrap_or_else(|| panic!("{name} #{i}: no counterpart for {p}"));
            used[j] = true;
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
