//! PASCAL VOC annotation files (`Annotations/<id>.xml`).
//!
//! VOC boxes are 1-based inclusive pixel coordinates. Reading subtracts 1 (as amdegroot and
//! lufficc do), giving 0-based continuous pixel coordinates in `[0, width - 1] x [0, height - 1]`;
//! [`Annotation::normalized_boxes`] divides by the image size. Boxes that stick out of the image are
//! clipped to it; boxes that are inverted or have no area after clipping are left out of the
//! objects training sees. Both are counted in a [`SanitizeReport`] so the caller can print them,
//! and nothing downstream of [`Annotation::objects`] ever sees a box that would encode to NaN.
//!
//! What the file says is kept too: every object's box exactly as given ([`GivenBox`]), and the
//! objects left out with their place in the file ([`Annotation::dropped`]), because evaluation
//! scores the ground truth exactly as the file gives it, as the devkit and pycocotools do
//! ([`Annotation::ground_truth`]). What to clip or drop is a training decision.

use std::path::Path;

use roxmltree::{Document, Node};
use ssd_core::CornerBox;

use crate::{ClassList, DataError};

/// One object of an annotation, read from a VOC or a COCO file.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// 1-based class index in the dataset's [`ClassList`].
    pub label: usize,
    /// Box in continuous pixel coordinates, clipped to the image: VOC values minus 1, COCO's
    /// `[x, y, x + w, y + h]`.
    pub bbox: CornerBox,
    /// `<difficult>1</difficult>`: ignored by VOC evaluation, optionally dropped in training.
    pub difficult: bool,
    /// `<truncated>1</truncated>`.
    pub truncated: bool,
    /// COCO's `iscrowd`: a crowd region, never a training target; in evaluation, detections
    /// matching it are ignored.
    pub crowd: bool,
    /// COCO's `area` (the mask's area, which COCO's small/medium/large ranges use), when given.
    pub area: Option<f64>,
    /// The box exactly as the file gives it (unclipped, possibly empty or inverted): what
    /// evaluation scores.
    pub given: GivenBox,
}

/// An object's box exactly as its annotation file gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GivenBox {
    /// VOC's `<bndbox>` `[xmin, ymin, xmax, ymax]`: 1-based inclusive pixels, the devkit's own.
    Voc([f64; 4]),
    /// COCO's `bbox` `[x, y, w, h]`: 0-based pixels.
    Coco([f64; 4]),
}

impl GivenBox {
    /// The box in COCO's form `[x, y, w, h]` (a VOC box's corners made 0-based: `x = xmin - 1`,
    /// `w = xmax - xmin`, as a devkit detection converts).
    pub fn xywh(self) -> [f64; 4] {
        match self {
            GivenBox::Coco(b) => b,
            GivenBox::Voc([x0, y0, x1, y1]) => [x0 - 1.0, y0 - 1.0, x1 - x0, y1 - y0],
        }
    }

    /// The box in the devkit's 1-based pixels (a COCO box's corners `[x, y, x + w, y + h]` plus
    /// 1, as a COCO detection converts).
    pub fn devkit(self) -> [f64; 4] {
        match self {
            GivenBox::Voc(b) => b,
            GivenBox::Coco([x, y, w, h]) => [x + 1.0, y + 1.0, x + w + 1.0, y + h + 1.0],
        }
    }
}

impl Object {
    /// The box in COCO's form `[x, y, w, h]`, as the file gives it (see [`GivenBox::xywh`]).
    pub fn xywh(&self) -> [f64; 4] {
        self.given.xywh()
    }

    /// The area the COCO metric uses: the file's `area`, else `w * h`.
    pub fn coco_area(&self) -> f64 {
        self.area.unwrap_or_else(|| {
            let [_, _, w, h] = self.xywh();
            w * h
        })
    }
}

/// What sanitising one annotation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SanitizeReport {
    /// Boxes partly outside the image, clipped to it.
    pub clipped: usize,
    /// Boxes left out of training: inverted, zero-area, or entirely outside the image.
    pub dropped: usize,
}

impl SanitizeReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: SanitizeReport) {
        self.clipped += other.clipped;
        self.dropped += other.dropped;
    }
}

/// A parsed annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// `<filename>`, if present.
    pub filename: Option<String>,
    /// Image width in pixels (`<size><width>`).
    pub width: u32,
    /// Image height in pixels (`<size><height>`).
    pub height: u32,
    /// The objects training may use (boxes clipped to the image, none empty), in file order.
    pub objects: Vec<Object>,
    /// The objects whose box is empty once clipped to the image (zero or negative width or
    /// height, or entirely outside it), each with its index among the file's objects for this
    /// image: never a training target, but ground truth for evaluation. Their `bbox` is the
    /// empty clipped box; [`Object::given`] is the file's.
    pub dropped: Vec<(usize, Object)>,
    /// What sanitising changed.
    pub report: SanitizeReport,
}

impl Annotation {
    /// Reads and parses `path` (see [`Annotation::parse`]).
    pub fn from_file(path: &Path, classes: &ClassList) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            DataError::from_io(path, source, |path| DataError::MissingAnnotation { path })
        })?;
        Self::parse(&text, path, classes)
    }

    /// Parses the text of a VOC annotation; `path` is only used in errors.
    ///
    /// Reads `size/width`, `size/height`, and for each `object`: `name`, `difficult`, `truncated`
    /// and `bndbox` (integer or float coordinates). Everything else (`part`, `pose`, `occluded`,
    /// `segmented`, `source`, ...) is accepted and ignored.
    pub fn parse(text: &str, path: &Path, classes: &ClassList) -> Result<Self, DataError> {
        let doc = Document::parse(text).map_err(|e| DataError::MalformedXml {
            path: path.to_owned(),
            line: e.pos().row,
            message: e.to_string(),
        })?;
        let root = doc.root_element();
        let size = child(root, "size").ok_or_else(|| missing(path, None, "size"))?;
        let width = size_field(size, "width", path)?;
        let height = size_field(size, "height", path)?;
        let mut annotation = Self::empty(width, height);
        annotation.filename = child_text(root, "filename").map(str::to_owned);
        for (index, node) in root
            .children()
            .filter(|n| n.has_tag_name("object"))
            .enumerate()
        {
            annotation.push(parse_object(node, index, path, classes, width, height)?);
        }
        Ok(annotation)
    }

    /// An annotation of a `width` x `height` image without objects.
    pub(crate) fn empty(width: u32, height: u32) -> Self {
        Self {
            filename: None,
            width,
            height,
            objects: Vec::new(),
            dropped: Vec::new(),
            report: SanitizeReport::default(),
        }
    }

    /// Every object of the file in file order, dropped ones included: the ground truth
    /// evaluation scores (with each object's [`Object::given`] box).
    pub fn ground_truth(&self) -> impl Iterator<Item = &Object> + '_ {
        let mut kept = self.objects.iter();
        let mut dropped = self.dropped.iter().peekable();
        (0..self.objects.len() + self.dropped.len()).filter_map(move |i| {
            match dropped.next_if(|(at, _)| *at == i) {
                Some((_, o)) => Some(o),
                None => kept.next(),
            }
        })
    }

    /// Adds the next object of the file (see [`Annotation::dropped`]), counted in the report.
    pub(crate) fn push(&mut self, object: Sanitized) {
        let index = self.objects.len() + self.dropped.len();
        match object {
            Sanitized::Kept(o) => self.objects.push(o),
            Sanitized::Clipped(o) => {
                self.report.clipped += 1;
                self.objects.push(o);
            }
            Sanitized::Dropped(o) => {
                self.report.dropped += 1;
                self.dropped.push((index, o));
            }
        }
    }

    /// The objects' boxes normalised to `[0, 1]` by the image width and height.
    pub fn normalized_boxes(&self) -> Vec<CornerBox> {
        let (w, h) = (self.width as f32, self.height as f32);
        self.objects
            .iter()
            .map(|o| {
                let b = o.bbox;
                CornerBox::new(b.xmin / w, b.ymin / h, b.xmax / w, b.ymax / h)
            })
            .collect()
    }

    /// The objects' 1-based class indices.
    pub fn labels(&self) -> Vec<usize> {
        self.objects.iter().map(|o| o.label).collect()
    }

    /// Image `index`'s ground truth for training: boxes normalised to `[0, 1]` and 1-based
    /// labels, without crowd regions, and without difficult objects unless `keep_difficult`.
    pub fn training_targets(&self, keep_difficult: bool) -> (Vec<CornerBox>, Vec<usize>) {
        let (w, h) = (self.width as f32, self.height as f32);
        self.objects
            .iter()
            .filter(|o| !o.crowd && (keep_difficult || !o.difficult))
            .map(|o| {
                let b = o.bbox;
                (
                    CornerBox::new(b.xmin / w, b.ymin / h, b.xmax / w, b.ymax / h),
                    o.label,
                )
            })
            .unzip()
    }

    /// The same annotation without its difficult objects.
    pub fn without_difficult(mut self) -> Self {
        self.objects.retain(|o| !o.difficult);
        self
    }
}

/// One object of a file, after clipping its box to the image.
pub(crate) enum Sanitized {
    /// Inside the image.
    Kept(Object),
    /// Partly outside: clipped.
    Clipped(Object),
    /// Nothing left once clipped: evaluation's, not training's.
    Dropped(Object),
}

impl Sanitized {
    /// `object` with `bbox` the clipped corners of `corners` (continuous pixels) within
    /// `[0, max_x] x [0, max_y]`.
    pub(crate) fn clip(mut object: Object, corners: [f64; 4], max_x: f64, max_y: f64) -> Self {
        let [x0, y0, x1, y1] = corners;
        let clipped = [
            x0.clamp(0.0, max_x),
            y0.clamp(0.0, max_y),
            x1.clamp(0.0, max_x),
            y1.clamp(0.0, max_y),
        ];
        object.bbox = CornerBox::new(
            clipped[0] as f32,
            clipped[1] as f32,
            clipped[2] as f32,
            clipped[3] as f32,
        );
        if clipped[2] <= clipped[0] || clipped[3] <= clipped[1] {
            Sanitized::Dropped(object)
        } else if clipped == corners {
            Sanitized::Kept(object)
        } else {
            Sanitized::Clipped(object)
        }
    }
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn child_text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).and_then(|n| n.text()).map(str::trim)
}

fn missing(path: &Path, object: Option<usize>, field: &'static str) -> DataError {
    DataError::MissingField {
        path: path.to_owned(),
        object,
        field,
    }
}

fn number(
    text: &str,
    path: &Path,
    object: Option<usize>,
    field: &'static str,
) -> Result<f64, DataError> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| DataError::BadNumber {
            path: path.to_owned(),
            object,
            field,
            text: text.to_owned(),
        })
}

fn size_field(size: Node<'_, '_>, field: &'static str, path: &Path) -> Result<u32, DataError> {
    let text = child_text(size, field).ok_or_else(|| missing(path, None, field))?;
    let value = number(text, path, None, field)?;
    if value < 1.0 || value > f64::from(u32::MAX) || value.fract() != 0.0 {
        return Err(DataError::BadNumber {
            path: path.to_owned(),
            object: None,
            field,
            text: text.to_owned(),
        });
    }
    Ok(value as u32)
}

/// `0`/`1` flags; absent means 0. VOC files only use those two values.
fn flag(
    node: Node<'_, '_>,
    field: &'static str,
    path: &Path,
    object: usize,
) -> Result<bool, DataError> {
    match child_text(node, field) {
        None => Ok(false),
        Some(text) => Ok(number(text, path, Some(object), field)? != 0.0),
    }
}

fn parse_object(
    node: Node<'_, '_>,
    index: usize,
    path: &Path,
    classes: &ClassList,
    width: u32,
    height: u32,
) -> Result<Sanitized, DataError> {
    let name = child_text(node, "name").ok_or_else(|| missing(path, Some(index), "name"))?;
    let label = classes
        .index_of(name)
        .ok_or_else(|| DataError::UnknownClass {
            path: path.to_owned(),
            object: index,
            name: name.to_owned(),
        })?;
    let difficult = flag(node, "difficult", path, index)?;
    let truncated = flag(node, "truncated", path, index)?;
    let bndbox = child(node, "bndbox").ok_or(DataError::MissingBndbox {
        path: path.to_owned(),
        object: index,
    })?;
    let mut given = [0f64; 4];
    for (slot, field) in given.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
        let text = child_text(bndbox, field).ok_or_else(|| missing(path, Some(index), field))?;
        *slot = number(text, path, Some(index), field)?;
    }
    let object = Object {
        label,
        bbox: CornerBox::new(0.0, 0.0, 0.0, 0.0),
        difficult,
        truncated,
        crowd: false,
        area: None,
        given: GivenBox::Voc(given),
    };
    let corners = given.map(|v| v - 1.0);
    let (max_x, max_y) = (f64::from(width) - 1.0, f64::from(height) - 1.0);
    Ok(Sanitized::clip(object, corners, max_x, max_y))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOG: &str = r#"<annotation>
	<folder>VOC2007</folder>
	<filename>000001.jpg</filename>
	<source><database>The VOC2007 Database</database></source>
	<size><width>353</width><height>500</height><depth>3</depth></size>
	<segmented>0</segmented>
	<object>
		<name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
		<bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox>
	</object>
	<object>
		<name>person</name><pose>Left</pose><truncated>1</truncated><difficult>1</difficult>
		<bndbox><xmin>8.5</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax></bndbox>
		<part><name>head</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></part>
	</object>
</annotation>"#;

    fn parse(text: &str) -> Result<Annotation, DataError> {
        Annotation::parse(text, Path::new("Annotations/x.xml"), &ClassList::voc())
    }

    #[test]
    fn reads_a_real_voc_layout() {
        let a = parse(DOG).expect("valid annotation");
        assert_eq!((a.width, a.height), (353, 500));
        assert_eq!(a.filename.as_deref(), Some("000001.jpg"));
        assert_eq!(a.labels(), vec![12, 15]);
        assert_eq!(a.objects[0].bbox, CornerBox::new(47.0, 239.0, 194.0, 370.0));
        assert!(a.objects[0].truncated && !a.objects[0].difficult);
        assert!(a.objects[1].difficult);
        assert_eq!(
            a.objects[1].bbox.xmin, 7.5,
            "float coordinates are accepted"
        );
        assert_eq!(a.report, SanitizeReport::default());
        let n = a.normalized_boxes();
        assert!(
            (n[0].xmin - 47.0 / 353.0).abs() < 1e-7 && (n[0].ymax - 370.0 / 500.0).abs() < 1e-7
        );
        assert_eq!(a.clone().without_difficult().labels(), vec![12]);
    }

    fn one_box(xmin: &str, ymin: &str, xmax: &str, ymax: &str) -> String {
        format!(
            "<annotation><size><width>100</width><height>50</height></size><object><name>cat</name>\
             <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>\
             </object></annotation>"
        )
    }

    #[test]
    fn boxes_outside_the_image_are_clipped_and_counted() {
        let a = parse(&one_box("-5", "10", "150", "20")).expect("valid");
        assert_eq!(a.objects[0].bbox, CornerBox::new(0.0, 9.0, 99.0, 19.0));
        assert_eq!(
            a.report,
            SanitizeReport {
                clipped: 1,
                dropped: 0
            }
        );
    }

    #[test]
    fn inverted_zero_area_and_outside_boxes_are_dropped_and_counted() {
        for (x0, y0, x1, y1) in [
            ("30", "10", "20", "20"),
            ("10", "10", "10", "20"),
            ("120", "5", "130", "9"),
        ] {
            let a = parse(&one_box(x0, y0, x1, y1)).expect("valid");
            assert!(a.objects.is_empty(), "{x0},{y0},{x1},{y1}");
            assert_eq!(
                a.report,
                SanitizeReport {
                    clipped: 0,
                    dropped: 1
                }
            );
            // Kept for evaluation, exactly as given.
            let given = [x0, y0, x1, y1].map(|v| v.parse::<f64>().expect("number"));
            assert_eq!(a.dropped.len(), 1);
            assert_eq!(a.dropped[0].1.given, GivenBox::Voc(given));
            assert_eq!(a.dropped[0].1.given.devkit(), given);
        }
    }

    #[test]
    fn ground_truth_is_every_object_in_file_order_as_given() {
        let text = "<annotation><size><width>100</width><height>50</height></size>\
            <object><name>cat</name><bndbox><xmin>-5</xmin><ymin>10</ymin><xmax>150</xmax><ymax>20</ymax></bndbox></object>\
            <object><name>dog</name><bndbox><xmin>30</xmin><ymin>10</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>\
            <object><name>cow</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>\
            <object><name>cat</name><bndbox><xmin>120</xmin><ymin>5</ymin><xmax>130</xmax><ymax>9</ymax></bndbox></object>\
            </annotation>";
        let a = parse(text).expect("valid");
        assert_eq!(
            a.labels(),
            vec![8, 10],
            "training keeps the cat (clipped) and the cow"
        );
        let given: Vec<[f64; 4]> = a.ground_truth().map(|o| o.given.devkit()).collect();
        assert_eq!(
            given,
            vec![
                [-5.0, 10.0, 150.0, 20.0],
                [30.0, 10.0, 20.0, 20.0],
                [1.0, 1.0, 9.0, 9.0],
                [120.0, 5.0, 130.0, 9.0]
            ]
        );
        assert_eq!(a.objects[0].given.xywh(), [-6.0, 9.0, 155.0, 10.0]);
    }

    #[test]
    fn each_bad_input_has_its_own_error() {
        assert!(matches!(
            parse("<annotation><size>"),
            Err(DataError::MalformedXml { .. })
        ));
        assert!(matches!(
            parse("<annotation></annotation>"),
            Err(DataError::MissingField { field: "size", .. })
        ));
        let no_box = "<annotation><size><width>9</width><height>9</height></size>\
                      <object><name>cat</name></object></annotation>";
        assert!(matches!(
            parse(no_box),
            Err(DataError::MissingBndbox { object: 0, .. })
        ));
        let unknown = one_box("1", "1", "5", "5").replace("cat", "unicorn");
        assert!(matches!(
            parse(&unknown),
            Err(DataError::UnknownClass { object: 0, .. })
        ));
        assert!(matches!(
            parse(&one_box("1", "1", "five", "5")),
            Err(DataError::BadNumber { field: "xmax", .. })
        ));
        assert!(matches!(
            parse(&one_box("1", "1", "NaN", "5")),
            Err(DataError::BadNumber { field: "xmax", .. })
        ));
        let zero = one_box("1", "1", "5", "5").replace("<width>100", "<width>0");
        assert!(matches!(
            parse(&zero),
            Err(DataError::BadNumber { field: "width", .. })
        ));
    }

    #[test]
    fn malformed_xml_names_the_line() {
        let err = parse("<annotation>\n<size>\n</annotation>");
        match err {
            Err(DataError::MalformedXml { line, path, .. }) => {
                assert_eq!(line, 3);
                assert!(path.ends_with("x.xml"));
            }
            other => panic!("expected MalformedXml, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_file_is_its_own_error() {
        let r = Annotation::from_file(Path::new("/nonexistent/000001.xml"), &ClassList::voc());
        assert!(matches!(r, Err(DataError::MissingAnnotation { .. })));
    }
}
