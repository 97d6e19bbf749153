//! The VOC XML reader on input nobody wrote for it: arbitrary bytes, and real annotations with
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
