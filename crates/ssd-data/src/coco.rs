//! COCO annotation files (`instances_*.json`: `images`, `annotations`, `categories`).
//!
//! A file is parsed typed in one pass (`serde`, no intermediate JSON tree), and every problem is
//! an error naming the file and the JSON path of the value (`annotations[1523].bbox`). The
//! annotations become the same [`Annotation`]s a VOC file gives: COCO's `bbox` `[x, y, w, h]`
//! (pixels, no `+1`) becomes the corner box `[x, y, x + w, y + h]`, clipped to the image; the
//! file's own box and `area` are kept for the COCO metric. Boxes with no width or height, or
//! entirely outside the image, are left out of training and counted, but stay ground truth for
//! evaluation (pycocotools scores them); crowd regions (`iscrowd`) are kept, marked, and never
//! trained on. A UTF-8 byte-order mark before the JSON is accepted.
//!
//! Category ids are arbitrary: labels `1..=K` follow the ids in ascending order (lufficc/SSD),
//! and the class list records the ids so results are written with the file's own.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use ssd_core::CornerBox;

use crate::annotation::Sanitized;
use crate::{Annotation, ClassList, DataError, GivenBox, Object};

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

/// The `categories` of a file; every other key is skipped by the parser without being built
/// (serde ignores unknown fields), however deep it nests.
#[derive(Deserialize)]
struct CategoriesOnly {
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    id: u64,
    image_id: u64,
    category_id: u64,
    #[serde(deserialize_with = "four_numbers")]
    bbox: [f64; 4],
    #[serde(default)]
    area: Option<f64>,
    #[serde(default, deserialize_with = "crowd_flag")]
    iscrowd: bool,
}

#[derive(Deserialize, Clone)]
struct CocoCategory {
    id: u64,
    name: String,
}

/// A `bbox`: exactly four numbers, an error saying so (and how many there were) otherwise.
fn four_numbers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[f64; 4], D::Error> {
    struct Four;
    impl<'de> Visitor<'de> for Four {
        type Value = [f64; 4];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("4 numbers [x, y, w, h]")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<[f64; 4], A::Error> {
            let mut out = [0.0; 4];
            let mut n = 0;
            while let Some(v) = seq.next_element::<f64>()? {
                if let Some(slot) = out.get_mut(n) {
                    *slot = v;
                }
                n += 1;
            }
            if n == 4 {
                Ok(out)
            } else {
                Err(de::Error::invalid_length(n, &self))
            }
        }
    }
    deserializer.deserialize_seq(Four)
}

/// `iscrowd` as `0`/`1` (COCO) or `false`/`true` (some exporters).
fn crowd_flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Flag;
    impl Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("0, 1, false or true")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            Err(E::invalid_value(de::Unexpected::Signed(v), &self))
        }
    }
    deserializer.deserialize_any(Flag)
}

/// One image of a COCO file with its ground truth.
#[derive(Debug, Clone)]
pub(crate) struct CocoEntry {
    /// The image's `id`.
    pub id: u64,
    /// `file_name`, relative to the images folder.
    pub file_name: String,
    /// The annotation (objects in file order).
    pub annotation: Annotation,
}

/// What one COCO file holds, labels resolved.
#[derive(Debug)]
pub(crate) struct CocoContents {
    pub images: Vec<CocoEntry>,
    /// The classes labels index: the caller's, or the file's own.
    pub classes: ClassList,
    /// The file's own categories (ids ascending).
    pub own: ClassList,
    /// The label of each of the file's category ids.
    pub labels: HashMap<u64, usize>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| {
        DataError::from_io(path, source, |path| DataError::MissingAnnotation { path })
    })
}

fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8], path: &Path) -> Result<T, DataError> {
    // A byte-order mark is not JSON, but editors on Windows write one.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| bad_json(path, e))?;
    de.end().map_err(|e| json_error(path, String::new(), &e))?;
    Ok(value)
}

fn bad_json(path: &Path, e: serde_path_to_error::Error<serde_json::Error>) -> DataError {
    let json_path = e.path().to_string();
    let json_path = if json_path == "." {
        String::new()
    } else {
        json_path
    };
    json_error(path, json_path, e.inner())
}

fn json_error(path: &Path, json_path: String, e: &serde_json::Error) -> DataError {
    DataError::BadJson {
        path: path.to_owned(),
        json_path,
        line: e.line(),
        message: strip_position(&e.to_string()),
    }
}

/// serde_json's message without its " at line L column C" tail (the error shows the line).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn invalid(path: &Path, json_path: String, reason: impl Into<String>) -> DataError {
    DataError::InvalidCoco {
        path: path.to_owned(),
        json_path,
        reason: reason.into(),
    }
}

/// The class list of a COCO file's `categories` (names, ids ascending), reading nothing else
/// into memory.
pub(crate) fn read_classes(path: &Path) -> Result<ClassList, DataError> {
    let bytes = read_bytes(path)?;
    let only: CategoriesOnly = parse(&bytes, path)?;
    sorted_classes(&only.categories, path)
}

fn sorted_classes(categories: &[CocoCategory], path: &Path) -> Result<ClassList, DataError> {
    if categories.is_empty() {
        return Err(invalid(path, "categories".into(), "no categories"));
    }
    let mut seen = HashMap::with_capacity(categories.len());
    for (i, c) in categories.iter().enumerate() {
        if let Some(first) = seen.insert(c.id, i) {
            return Err(invalid(
                path,
                format!("categories[{i}].id"),
                format!("category id {} is also categories[{first}]'s", c.id),
            ));
        }
    }
    let mut sorted: Vec<&CocoCategory> = categories.iter().collect();
    sorted.sort_by_key(|c| c.id);
    let names = sorted.iter().map(|c| c.name.clone()).collect();
    let ids = sorted.iter().map(|c| c.id).collect();
    ClassList::new(names)
        .and_then(|c| c.with_category_ids(ids))
        .map_err(|e| match e {
            DataError::BadClassList { reason, .. } => invalid(path, "categories".into(), reason),
            other => other,
        })
}

/// How a file's category ids become labels of `classes` (the model's): by id when `classes`
/// records ids, else by name. A category `classes` lacks is an error.
fn label_map(
    categories: &[CocoCategory],
    classes: &ClassList,
    path: &Path,
) -> Result<HashMap<u64, usize>, DataError> {
    let mut map = HashMap::with_capacity(categories.len());
    for (i, c) in categories.iter().enumerate() {
        let (label, lacking) = match classes.category_ids() {
            Some(ids) => (
                classes.label_of_category(c.id),
                format!(
                    "category id {} (named {:?} here) is not one of the model's category ids {ids:?}",
                    c.id, c.name
                ),
            ),
            None => (
                classes.index_of(&c.name),
                format!(
                    "category name {:?} (id {}) is not one of the model's {} class names",
                    c.name,
                    c.id,
                    classes.len()
                ),
            ),
        };
        let Some(label) = label else {
            return Err(invalid(path, format!("categories[{i}]"), lacking));
        };
        map.insert(c.id, label);
    }
    Ok(map)
}

/// Reads a COCO file. With `classes`, the file's categories are mapped onto them (see
/// [`label_map`]); without, the file's own categories are the classes.
pub(crate) fn read_file(
    path: &Path,
    classes: Option<&ClassList>,
) -> Result<CocoContents, DataError> {
    let bytes = read_bytes(path)?;
    parse_contents(&bytes, path, classes)
}

/// Parses the bytes of a COCO annotation file as [`DetectionDataset`](crate::DetectionDataset)
/// does (every check included; `path` only names the file in errors) and returns what a dataset
/// of it would report: images, objects, crowd regions, boxes clipped and dropped.
pub fn check_coco_bytes(bytes: &[u8], path: &Path) -> Result<crate::DatasetReport, DataError> {
    let contents = parse_contents(bytes, path, None)?;
    let mut report = crate::DatasetReport {
        images: contents.images.len(),
        ..Default::default()
    };
    for e in &contents.images {
        let a = &e.annotation;
        report.objects += a.objects.len();
        report.crowd += a.objects.iter().filter(|o| o.crowd).count();
        report.clipped += a.report.clipped;
        report.dropped += a.report.dropped;
        report.images_without_objects += usize::from(a.objects.is_empty());
    }
    Ok(report)
}

fn parse_contents(
    bytes: &[u8],
    path: &Path,
    classes: Option<&ClassList>,
) -> Result<CocoContents, DataError> {
    let file: CocoFile = parse(bytes, path)?;
    let own = sorted_classes(&file.categories, path)?;
    let classes = match classes {
        Some(c) => c.clone(),
        None => own.clone(),
    };
    let labels = label_map(&file.categories, &classes, path)?;

    let mut index = HashMap::with_capacity(file.images.len());
    let mut images = Vec::with_capacity(file.images.len());
    for (i, image) in file.images.into_iter().enumerate() {
        if let Some(first) = index.insert(image.id, i) {
            return Err(invalid(
                path,
                format!("images[{i}].id"),
                format!("image id {} is also images[{first}]'s", image.id),
            ));
        }
        if image.width == 0 || image.height == 0 {
            return Err(invalid(
                path,
                format!("images[{i}]"),
                format!(
                    "image {} has size {}x{}",
                    image.id, image.width, image.height
                ),
            ));
        }
        if !is_relative_name(&image.file_name) {
            return Err(invalid(
                path,
                format!("images[{i}].file_name"),
                format!(
                    "{:?} is not a file name inside the images folder",
                    image.file_name
                ),
            ));
        }
        images.push(CocoEntry {
            id: image.id,
            file_name: image.file_name,
            annotation: Annotation::empty(image.width, image.height),
        });
    }
    let mut annotation_ids = HashMap::with_capacity(file.annotations.len());
    for (i, a) in file.annotations.iter().enumerate() {
        if let Some(first) = annotation_ids.insert(a.id, i) {
            return Err(invalid(
                path,
                format!("annotations[{i}].id"),
                format!("annotation id {} is also annotations[{first}]'s", a.id),
            ));
        }
        let Some(&image) = index.get(&a.image_id) else {
            return Err(invalid(
                path,
                format!("annotations[{i}].image_id"),
                format!("image {} is not in `images`", a.image_id),
            ));
        };
        let Some(&label) = labels.get(&a.category_id) else {
            return Err(invalid(
                path,
                format!("annotations[{i}].category_id"),
                format!("category {} is not in `categories`", a.category_id),
            ));
        };
        if !a.bbox.iter().all(|v| v.is_finite()) {
            return Err(invalid(
                path,
                format!("annotations[{i}].bbox"),
                "expected 4 finite numbers",
            ));
        }
        if let Some(area) = a.area
            && !(area.is_finite() && area >= 0.0)
        {
            return Err(invalid(
                path,
                format!("annotations[{i}].area"),
                format!("{area} is not an area"),
            ));
        }
        let entry = &mut images[image].annotation;
        entry.push(sanitize(a, label, entry.width, entry.height));
    }
    Ok(CocoContents {
        images,
        classes,
        own,
        labels,
    })
}

/// A `file_name` that names a file inside the images folder: relative, no `..`, ending in a
/// name (not `.` or `dir/`), no NUL byte (which no file system allows).
fn is_relative_name(name: &str) -> bool {
    let p = Path::new(name);
    !name.contains('\0')
        && !name.ends_with('/')
        && p.is_relative()
        && matches!(p.components().next_back(), Some(Component::Normal(_)))
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn sanitize(a: &CocoAnnotation, label: usize, width: u32, height: u32) -> Sanitized {
    let [x, y, w, h] = a.bbox;
    let object = Object {
        label,
        bbox: CornerBox::new(0.0, 0.0, 0.0, 0.0),
        difficult: false,
        truncated: false,
        crowd: a.iscrowd,
        area: a.area,
        given: GivenBox::Coco(a.bbox),
    };
    let corners = [x, y, x + w, y + h];
    Sanitized::clip(object, corners, f64::from(width), f64::from(height))
}

/// Where a COCO file's images are: `--images DIR` if given, else beside the file.
pub(crate) fn default_images_dir(file: &Path) -> PathBuf {
    file.parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(tag: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ssd-coco-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("instances.json");
        std::fs::write(&path, text).ok();
        path
    }

    const GOOD: &str = r#"{"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50},
        {"id": 3, "file_name": "b.jpg", "width": 40, "height": 40}],
      "annotations": [
        {"id": 1, "image_id": 7, "category_id": 18, "bbox": [10, 5, 20, 10], "area": 150.5, "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 2, "bbox": [90, 40, 20, 20], "area": 100, "iscrowd": 1},
        {"id": 3, "image_id": 7, "category_id": 2, "bbox": [1, 1, 0, 5], "area": 0, "iscrowd": 0}],
      "categories": [{"id": 18, "name": "dog"}, {"id": 2, "name": "traffic light"}]}"#;

    #[test]
    fn reads_ids_labels_crowds_and_areas() {
        let path = write("good", GOOD);
        let c = read_file(&path, None).expect("parses");
        assert_eq!(c.classes.names(), ["traffic light", "dog"]);
        assert_eq!(c.classes.category_ids(), Some(&[2u64, 18][..]));
        assert_eq!(c.images.len(), 2);
        let a = &c.images[0].annotation;
        assert_eq!(c.images[0].id, 7);
        assert_eq!(a.objects.len(), 2);
        assert_eq!(a.objects[0].label, 2);
        assert_eq!(a.objects[0].bbox, CornerBox::new(10.0, 5.0, 30.0, 15.0));
        assert_eq!(a.objects[0].area, Some(150.5));
        assert!(a.objects[1].crowd);
        // Clipped to the image for training, the file's box kept for evaluation.
        assert_eq!(a.objects[1].bbox, CornerBox::new(90.0, 40.0, 100.0, 50.0));
        assert_eq!(a.objects[1].given, GivenBox::Coco([90.0, 40.0, 20.0, 20.0]));
        assert_eq!(a.report.clipped, 1);
        assert_eq!(a.report.dropped, 1);
        // The zero-width box is no training target, but ground truth as given, in file order.
        assert_eq!(a.dropped.len(), 1);
        let given: Vec<[f64; 4]> = a.ground_truth().map(Object::xywh).collect();
        assert_eq!(
            given,
            vec![
                [10.0, 5.0, 20.0, 10.0],
                [90.0, 40.0, 20.0, 20.0],
                [1.0, 1.0, 0.0, 5.0]
            ]
        );
        let (boxes, labels) = a.training_targets(true);
        assert_eq!((boxes.len(), labels), (1, vec![2]));
        assert!(c.images[1].annotation.objects.is_empty());
        assert_eq!(
            read_classes(&path).expect("categories").names(),
            c.classes.names()
        );
    }

    #[test]
    fn maps_onto_a_models_classes_by_id_or_name() {
        let path = write("map", GOOD);
        let by_name =
            ClassList::new(vec!["dog".into(), "cat".into(), "traffic light".into()]).expect("list");
        let c = read_file(&path, Some(&by_name)).expect("by name");
        assert_eq!(c.images[0].annotation.objects[0].label, 1);
        let by_id = by_name
            .clone()
            .with_category_ids(vec![18, 5, 2])
            .expect("ids");
        let c = read_file(&path, Some(&by_id)).expect("by id");
        assert_eq!(c.images[0].annotation.objects[1].label, 3);
        let lacking = ClassList::new(vec!["dog".into()]).expect("list");
        let err = read_file(&path, Some(&lacking)).expect_err("traffic light is unknown");
        assert!(err.to_string().contains("categories[1]"), "{err}");
        assert!(
            err.to_string().contains("category name \"traffic light\""),
            "{err}"
        );
        // By id, the id is what is missing, whatever the name.
        let other_ids = by_name.with_category_ids(vec![18, 5, 3]).expect("ids");
        let err = read_file(&path, Some(&other_ids)).expect_err("id 2 is unknown");
        let message = err.to_string();
        assert!(
            message.contains("category id 2 (named \"traffic light\" here)")
                && message.contains("[18, 5, 3]"),
            "{message}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let path = write("bom", &format!("\u{feff}{GOOD}"));
        assert_eq!(read_file(&path, None).expect("parses").images.len(), 2);
        assert_eq!(read_classes(&path).expect("categories").len(), 2);
    }

    #[test]
    fn deep_keys_outside_the_annotations_are_skipped_by_both_readers() {
        let deep = format!("{}1{}", "{\"a\": ".repeat(200), "}".repeat(200));
        let text = GOOD.replacen('{', &format!("{{\"info\": {deep}, "), 1);
        let path = write("deep", &text);
        assert_eq!(read_file(&path, None).expect("parses").images.len(), 2);
        assert_eq!(read_classes(&path).expect("categories").len(), 2);
    }

    #[test]
    fn each_bad_input_names_its_json_path() {
        let cases = [
            (
                GOOD.replace("[10, 5, 20, 10]", "[10, 5, 20]"),
                "annotations[0].bbox",
            ),
            (
                GOOD.replace(
                    "\"image_id\": 7, \"category_id\": 18",
                    "\"image_id\": 8, \"category_id\": 18",
                ),
                "annotations[0].image_id",
            ),
            (
                GOOD.replace("\"category_id\": 18", "\"category_id\": 19"),
                "annotations[0].category_id",
            ),
            (
                GOOD.replace("\"id\": 3, \"file_name\"", "\"id\": 7, \"file_name\""),
                "images[1].id",
            ),
            (
                GOOD.replace("{\"id\": 2, \"image_id\"", "{\"id\": 1, \"image_id\""),
                "annotations[1].id",
            ),
            (
                GOOD.replace("{\"id\": 2, \"name\"", "{\"id\": 18, \"name\""),
                "categories[1].id",
            ),
            (
                GOOD.replace("\"iscrowd\": 1", "\"iscrowd\": 2"),
                "annotations[1].iscrowd",
            ),
            (
                GOOD.replace("\"width\": 100", "\"width\": -1"),
                "images[0].width",
            ),
            (GOOD.replace("\"width\": 100", "\"width\": 0"), "images[0]"),
            (
                GOOD.replace("\"a.jpg\"", "\"../a.jpg\""),
                "images[0].file_name",
            ),
            (
                GOOD.replace("\"area\": 150.5", "\"area\": -3"),
                "annotations[0].area",
            ),
            (GOOD.replace("\"file_name\": \"a.jpg\", ", ""), "images[0]"),
            (
                GOOD.replace("\"a.jpg\"", "\".\""),
                "images[0].file_name: \".\" is not a file name",
            ),
            (GOOD.replace("\"a.jpg\"", "\"sub/\""), "images[0].file_name"),
            (
                GOOD.replace("\"a.jpg\"", "\"a\\u0000.jpg\""),
                "images[0].file_name: \"a\\0.jpg\" is not a file name",
            ),
            (
                GOOD.replace("[10, 5, 20, 10]", "[10, 5, 20, 10, 3]"),
                "annotations[0].bbox: invalid length 5, expected 4 numbers",
            ),
            (
                GOOD.replace("{\"id\": 18, \"name\": \"dog\"}, ", "")
                    .replace("{\"id\": 2, \"name\": \"traffic light\"}", ""),
                "categories",
            ),
            (format!("{GOOD} x"), ""),
        ];
        for (i, (text, json_path)) in cases.iter().enumerate() {
            let path = write(&format!("bad{i}"), text);
            let err = read_file(&path, None).expect_err(json_path);
            let message = err.to_string();
            assert!(
                message.starts_with(&path.display().to_string()),
                "{message}"
            );
            assert!(message.contains(json_path), "case {i}: {message}");
        }
        let missing = read_file(Path::new("/nonexistent/instances.json"), None);
        assert!(matches!(missing, Err(DataError::MissingAnnotation { .. })));
    }
}
