//! The devkit result-file reader on input nobody wrote for it: arbitrary bytes and damaged
//! lines must give detections or an error naming file and line, never a panic.

use proptest::prelude::*;
use ssd_eval::{GroundTruthObject, MissingClass, VocEvaluator, read_results};

fn evaluator() -> VocEvaluator {
    let truth = GroundTruthObject {
        label: 1,
        bbox: [1.0, 1.0, 50.0, 50.0],
        difficult: false,
    };
    VocEvaluator::new(
        vec!["cat".to_owned()],
        vec![("000001".to_owned(), vec![truth])],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_result_files_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        line in "(000001|x)? ?[-0-9.e]{0,8} [-0-9.e]{0,6} [-0-9.]{0,6} [-0-9.]{0,6} [-0-9.nai]{0,6} ?[0-9]{0,3}",
    ) {
        let dir = std::env::temp_dir().join(format!("ssd-fuzz-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("comp4_det_test_cat.txt");
        for content in [bytes, format!("{line}\n000001 0.5 1 2 3 4\n{line}").into_bytes()] {
            std::fs::write(&file, &content).unwrap_or_else(|e| panic!("{e}"));
            let mut e = evaluator();
            if let Ok(n) = read_results(&mut e, &dir, "test", MissingClass::Error) {
                prop_assert!(n <= content.len());
                let _ = e.evaluate(&Default::default());
            }
        }
    }
}
