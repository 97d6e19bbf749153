//! Class lists: the 20 PASCAL VOC classes, or one name per line from a file.

use std::path::Path;

use crate::DataError;

/// The 20 PASCAL VOC classes in the alphabetical order of the devkit; class index `i + 1` is
/// `VOC_CLASSES[i]` (index 0 is the background).
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// The 80 COCO categories as `(category id, name)`, ids ascending (1 to 90 with gaps): the label
/// order of models trained on COCO by lufficc/SSD and of [`ClassList::coco`].
pub const COCO_CATEGORIES: [(u64, &str); 80] = [
    (1, "person"),
    (2, "bicycle"),
    (3, "car"),
    (4, "motorcycle"),
    (5, "airplane"),
    (6, "bus"),
    (7, "train"),
    (8, "truck"),
    (9, "boat"),
    (10, "traffic light"),
    (11, "fire hydrant"),
    (13, "stop sign"),
    (14, "parking meter"),
    (15, "bench"),
    (16, "bird"),
    (17, "cat"),
    (18, "dog"),
    (19, "horse"),
    (20, "sheep"),
    (21, "cow"),
    (22, "elephant"),
    (23, "bear"),
    (24, "zebra"),
    (25, "giraffe"),
    (27, "backpack"),
    (28, "umbrella"),
    (31, "handbag"),
    (32, "tie"),
    (33, "suitcase"),
    (34, "frisbee"),
    (35, "skis"),
    (36, "snowboard"),
    (37, "sports ball"),
    (38, "kite"),
    (39, "baseball bat"),
    (40, "baseball glove"),
    (41, "skateboard"),
    (42, "surfboard"),
    (43, "tennis racket"),
    (44, "bottle"),
    (46, "wine glass"),
    (47, "cup"),
    (48, "fork"),
    (49, "knife"),
    (50, "spoon"),
    (51, "bowl"),
    (52, "banana"),
    (53, "apple"),
    (54, "sandwich"),
    (55, "orange"),
    (56, "broccoli"),
    (57, "carrot"),
    (58, "hot dog"),
    (59, "pizza"),
    (60, "donut"),
    (61, "cake"),
    (62, "chair"),
    (63, "couch"),
    (64, "potted plant"),
    (65, "bed"),
    (67, "dining table"),
    (70, "toilet"),
    (72, "tv"),
    (73, "laptop"),
    (74, "mouse"),
    (75, "remote"),
    (76, "keyboard"),
    (77, "cell phone"),
    (78, "microwave"),
    (79, "oven"),
    (80, "toaster"),
    (81, "sink"),
    (82, "refrigerator"),
    (84, "book"),
    (85, "clock"),
    (86, "vase"),
    (87, "scissors"),
    (88, "teddy bear"),
    (89, "hair drier"),
    (90, "toothbrush"),
];

/// The object classes of a dataset, without the background. Class index 0 is the background;
/// `name(i)` for `i` in `1..=len()` is a real class.
///
/// A class list may also carry the dataset's own category id of each class (COCO files number
/// their categories arbitrarily, 1 to 90 with gaps for COCO itself): results are then written
/// with those ids. Without them, class `i` has category id `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassList {
    names: Vec<String>,
    category_ids: Option<Vec<u64>>,
}

impl Default for ClassList {
    /// The 20 VOC classes.
    fn default() -> Self {
        Self::voc()
    }
}

impl ClassList {
    /// The 20 PASCAL VOC classes ([`VOC_CLASSES`]).
    pub fn voc() -> Self {
        Self {
            names: VOC_CLASSES.iter().map(|s| (*s).to_owned()).collect(),
            category_ids: None,
        }
    }

    /// The 80 COCO categories with their ids ([`COCO_CATEGORIES`]): class 1 is `person` (id 1),
    /// class 80 `toothbrush` (id 90).
    pub fn coco() -> Self {
        Self {
            names: COCO_CATEGORIES
                .iter()
                .map(|(_, n)| (*n).to_owned())
                .collect(),
            category_ids: Some(COCO_CATEGORIES.iter().map(|(id, _)| *id).collect()),
        }
    }

    /// The 90 outputs of torchvision's COCO detectors: class `i` is category id `i` (1 to 90),
    /// the ten ids COCO does not use named `unused-<id>` (their detections match no category).
    pub fn coco_by_id() -> Self {
        let names = (1..=90u64)
            .map(|id| {
                COCO_CATEGORIES
                    .iter()
                    .find(|(c, _)| *c == id)
                    .map_or_else(|| format!("unused-{id}"), |(_, n)| (*n).to_owned())
            })
            .collect();
        Self {
            names,
            category_ids: Some((1..=90).collect()),
        }
    }

    /// The same classes, class `i` having category id `ids[i - 1]`. The ids must be as many as
    /// the classes and unique.
    pub fn with_category_ids(mut self, ids: Vec<u64>) -> Result<Self, DataError> {
        let bad = |reason: String| DataError::BadClassList {
            path: "<in memory>".into(),
            reason,
        };
        if ids.len() != self.names.len() {
            return Err(bad(format!(
                "{} category ids for {} classes",
                ids.len(),
                self.names.len()
            )));
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(format!("category id {} is listed twice", w[0])));
        }
        self.category_ids = Some(ids);
        Ok(self)
    }

    /// The category ids, when the list carries them (see [`ClassList::with_category_ids`]).
    pub fn category_ids(&self) -> Option<&[u64]> {
        self.category_ids.as_deref()
    }

    /// The category id of 1-based class `label`: the recorded id, else `label` itself. `None` for
    /// the background or a label out of range.
    pub fn category_id(&self, label: usize) -> Option<u64> {
        let i = label.checked_sub(1).filter(|&i| i < self.names.len())?;
        Some(match &self.category_ids {
            Some(ids) => ids[i],
            None => label as u64,
        })
    }

    /// The 1-based class whose category id is `id` (see [`ClassList::category_id`]).
    pub fn label_of_category(&self, id: u64) -> Option<usize> {
        match &self.category_ids {
            Some(ids) => ids.iter().position(|&c| c == id).map(|i| i + 1),
            None => usize::try_from(id)
                .ok()
                .filter(|&l| l >= 1 && l <= self.names.len()),
        }
    }

    /// A class list from names in order (class index `i + 1` is `names[i]`). Names must be
    /// non-empty, without leading or trailing whitespace or control characters, and unique.
    pub fn new(names: Vec<String>) -> Result<Self, DataError> {
        Self::checked(names, Path::new("<in memory>"))
    }

    /// Reads one class name per line; blank lines and lines starting with `#` are skipped.
    pub fn from_file(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        // A byte-order mark (some editors write one) is not part of the first name.
        let names = text
            .strip_prefix('\u{feff}')
            .unwrap_or(&text)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        Self::checked(names, path)
    }

    fn checked(names: Vec<String>, path: &Path) -> Result<Self, DataError> {
        if names.is_empty() {
            return Err(DataError::BadClassList {
                path: path.to_owned(),
                reason: "no class names".into(),
            });
        }
        for (i, name) in names.iter().enumerate() {
            // Inner spaces are fine (COCO's "traffic light"); a name must survive a trim and
            // fit on one line of a class file.
            if name.is_empty() || name.trim() != name || name.chars().any(char::is_control) {
                return Err(DataError::BadClassList {
                    path: path.to_owned(),
                    reason: format!(
                        "class {} ({name:?}) is empty, starts or ends with whitespace, or holds a \
                         control character",
                        i + 1
                    ),
                });
            }
            if names[..i].contains(name) {
                return Err(DataError::BadClassList {
                    path: path.to_owned(),
                    reason: format!("class {name:?} is listed twice"),
                });
            }
        }
        Ok(Self {
            names,
            category_ids: None,
        })
    }

    /// Number of object classes (20 for VOC), not counting the background.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: a class list has at least one class.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Number of network outputs per prior: the classes plus the background (21 for VOC).
    pub fn num_classes_with_background(&self) -> usize {
        self.names.len() + 1
    }

    /// The 1-based class index of `name`, if it is in the list.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name).map(|i| i + 1)
    }

    /// The name of 1-based class index `index`; `None` for 0 (background) or out of range.
    pub fn name(&self, index: usize) -> Option<&str> {
        index
            .checked_sub(1)
            .and_then(|i| self.names.get(i))
            .map(String::as_str)
    }

    /// The names, in class-index order (index 1 first).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voc_indices_are_one_based_and_alphabetical() {
        let c = ClassList::voc();
        assert_eq!(c.len(), 20);
        assert_eq!(c.num_classes_with_background(), 21);
        assert_eq!(c.index_of("aeroplane"), Some(1));
        assert_eq!(c.index_of("dog"), Some(12));
        assert_eq!(c.index_of("tvmonitor"), Some(20));
        assert_eq!(c.index_of("background"), None);
        assert_eq!(c.name(0), None);
        assert_eq!(c.name(15), Some("person"));
        assert_eq!(c.name(21), None);
    }

    #[test]
    fn bad_lists_are_refused() {
        let dup = ClassList::new(vec!["a".into(), "b".into(), "a".into()]);
        assert!(matches!(dup, Err(DataError::BadClassList { .. })));
        for bad in [" cat", "cat ", "a\tb", ""] {
            let list = ClassList::new(vec![bad.into()]);
            assert!(
                matches!(list, Err(DataError::BadClassList { .. })),
                "{bad:?}"
            );
        }
        assert!(ClassList::new(vec!["potted plant".into()]).is_ok());
        assert!(matches!(
            ClassList::new(vec![]),
            Err(DataError::BadClassList { .. })
        ));
    }

    #[test]
    fn category_ids_map_both_ways() {
        let coco = ClassList::coco();
        assert_eq!(coco.len(), 80);
        assert_eq!(coco.category_id(1), Some(1));
        assert_eq!(coco.category_id(80), Some(90));
        assert_eq!(coco.label_of_category(13), Some(12));
        assert_eq!(coco.label_of_category(12), None);
        assert_eq!(coco.category_id(0), None);
        let voc = ClassList::voc();
        assert_eq!(voc.category_id(20), Some(20));
        assert_eq!(voc.label_of_category(21), None);
        let dup = ClassList::voc().with_category_ids(vec![7; 20]);
        assert!(matches!(dup, Err(DataError::BadClassList { .. })));
        let short = ClassList::voc().with_category_ids(vec![1]);
        assert!(matches!(short, Err(DataError::BadClassList { .. })));
    }

    #[test]
    fn reads_a_file_with_comments_and_blank_lines() {
        let dir = std::env::temp_dir().join(format!("ssd-classes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("classes.txt");
        std::fs::write(&path, "# shapes\ncircle\n\n  square \ntriangle\n").ok();
        let c = ClassList::from_file(&path).ok();
        assert_eq!(
            c.map(|c| c.names().to_vec()),
            Some(vec![
                "circle".to_owned(),
                "square".to_owned(),
                "triangle".to_owned()
            ])
        );
        // A byte-order mark is not part of the first name.
        std::fs::write(&path, "\u{feff}circle\nsquare\n").ok();
        let c = ClassList::from_file(&path).ok();
        assert_eq!(c.and_then(|c| c.index_of("circle")), Some(1));
        let missing = ClassList::from_file(&dir.join("nope.txt"));
        assert!(matches!(missing, Err(DataError::Io { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }
}
