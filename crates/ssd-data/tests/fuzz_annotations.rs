//! The VOC XML and COCO JSON readers on input nobody wrote for them: arbitrary bytes, and real annotations with
//! bytes changed, inserted or cut. It must answer with a value or an error, never a panic. (A
//! fixed budget of cases per run; proptest's seed makes each run different.)

use std::path::Path;

use proptest::prelude::*;
use ssd_data::{Annotation, ClassList};

const VALID: &str = "<annotation><filename>000001.jpg</filename><size><width>353</width>\
<height>500</height><depth>3</depth></size><object><name>dog</name><pose>Left</pose>\
<truncated>1</truncated><difficult>0</difficult><bndbox><xmin>48</xmin><ymin>240</ymin>\
<xmax>195</xmax><ymax>371</ymax></bndbox></object><object><name>person</name>\
<difficult>1</difficult><bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax>\
</bndbox></object></annotation>";

fn parse(text: &str) {
    let _ = Annotation::parse(text, Path::new("fuzz.xml"), &ClassList::voc());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        parse(&text);
    }

    #[test]
    fn damaged_annotations_never_panic(
        at in 0usize..VALID.len(),
        cut in 0usize..40,
        insert in "[<>/a-z0-9.\\- ]{0,12}",
    ) {
        let at = (0..=at).rev().find(|&i| VALID.is_char_boundary(i)).unwrap_or(0);
        let end = (at + cut).min(VALID.len());
        let text = format!("{}{insert}{}", &VALID[..at], &VALID[end..]);
        parse(&text);
    }

    #[test]
    fn any_numbers_in_the_fields_never_panic(
        w in "-?[0-9]{0,12}(\\.[0-9]{0,3})?|nan|inf|1e999",
        x in "-?[0-9]{0,12}(\\.[0-9]{0,3})?|nan|inf|1e999",
    ) {
        parse(&VALID.replace("353", &w).replace(">48<", &format!(">{x}<")));
    }
}

#[test]
fn the_valid_annotation_parses() {
    let a = Annotation::parse(VALID, Path::new("ok.xml"), &ClassList::voc()).expect("valid");
    assert_eq!(a.objects.len(), 2);
}

const VALID_COCO: &str = r#"{"images": [{"id": 1, "file_name": "a.jpg", "width": 353, "height": 500},
{"id": 2, "file_name": "b.jpg", "width": 20, "height": 20}],
"annotations": [{"id": 1, "image_id": 1, "category_id": 18, "bbox": [48.5, 240, 147, 131], "area": 9000.5, "iscrowd": 0},
{"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 30, 30], "area": 400, "iscrowd": 1}],
"categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}]}"#;

fn parse_coco(text: &[u8]) {
    let _ = ssd_data::check_coco_bytes(text, Path::new("fuzz.json"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_are_no_coco_file_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        parse_coco(&bytes);
    }

    #[test]
    fn damaged_coco_files_never_panic(
        at in 0usize..VALID_COCO.len(),
        cut in 0usize..40,
        insert in "[\\[\\]{}\":,a-z0-9.\\- ]{0,12}",
    ) {
        let end = (at + cut).min(VALID_COCO.len());
        let text = format!("{}{insert}{}", &VALID_COCO[..at], &VALID_COCO[end..]);
        parse_coco(text.as_bytes());
    }

    #[test]
    fn any_numbers_in_a_coco_file_never_panic(
        n in "-?[0-9]{0,22}(\\.[0-9]{0,3})?(e[0-9]{1,3})?",
        m in "-?[0-9]{0,22}(\\.[0-9]{0,3})?(e-?[0-9]{1,3})?",
    ) {
        // Sizes, ids and box values beyond any range: an error or a value, never an allocation
        // sized by them.
        let text = VALID_COCO
            .replace("353", &n)
            .replace("147", &m)
            .replace("\"id\": 2, \"file_name\"", &format!("\"id\": {n}, \"file_name\""));
        parse_coco(text.as_bytes());
    }
}

#[test]
fn the_valid_coco_file_parses() {
    let report =
        ssd_data::check_coco_bytes(VALID_COCO.as_bytes(), Path::new("ok.json")).expect("valid");
    assert_eq!((report.images, report.objects, report.crowd), (2, 2, 1));
    assert_eq!(report.clipped, 1);
}
