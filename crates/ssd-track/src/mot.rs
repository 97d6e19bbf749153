//! The MOTChallenge text format: one object of one frame per line,
//! `frame,id,bb_left,bb_top,bb_width,bb_height,score,class,visibility,-1` with 1-based frames and
//! 1-based pixel coordinates (the left column of an image is 1), as the MOTChallenge devkit,
//! TrackEval and py-motmetrics read it.
//!
//! Tracker output ([`MotRow::result_line`]) puts the score in the 7th column and the class in the
//! 8th (`-1,-1` after them); ground truth ([`MotRow::ground_truth_line`]) puts 1 (scored) or 0
//! (ignored) in the 7th, the class in the 8th and the visible fraction in the 9th, as the MOT16
//! and MOT17 ground truth does.

/// One line of a MOT file.
#[derive(Debug, Clone, PartialEq)]
pub struct MotRow {
    /// The frame, from 1.
    pub frame: u64,
    /// The identity; -1 for a detection that belongs to no track (MOTChallenge's `det.txt`).
    pub id: i64,
    /// `[xmin, ymin, xmax, ymax]` in 0-based continuous pixels (ssd's convention; the file adds
    /// 1 to the left and top).
    pub bbox: [f32; 4],
    /// The score of a result; in ground truth, 1 for a scored object and 0 for one to ignore.
    pub score: f32,
    /// The class (1-based label).
    pub class: usize,
    /// In ground truth, the visible fraction of the object in [0, 1].
    pub visibility: Option<f32>,
}

/// A line that is not a MOT row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct MotParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl MotRow {
    fn common(&self) -> String {
        let [x0, y0, x1, y1] = self.bbox;
        format!(
            "{},{},{:.2},{:.2},{:.2},{:.2}",
            self.frame,
            self.id,
            x0 + 1.0,
            y0 + 1.0,
            x1 - x0,
            y1 - y0
        )
    }

    /// The row as a tracker's result line: `frame,id,x,y,w,h,score,class,-1,-1`.
    pub fn result_line(&self) -> String {
        format!("{},{:.4},{},-1,-1", self.common(), self.score, self.class)
    }

    /// The row as a ground-truth line: `frame,id,x,y,w,h,scored,class,visibility`.
    pub fn ground_truth_line(&self) -> String {
        format!(
            "{},{},{},{:.3}",
            self.common(),
            u8::from(self.score > 0.0),
            self.class,
            self.visibility.unwrap_or(1.0)
        )
    }

    /// Parses a line of either kind (7 to 10 comma-separated numbers; a class column of -1 or
    /// absent is class 0; a visibility of -1 or absent is `None`). `line` is the 1-based line
    /// number for the error.
    pub fn parse(text: &str, line: usize) -> Result<Self, MotParseError> {
        let error = |reason: String| MotParseError { line, reason };
        let fields: Vec<&str> = text.trim().split(',').map(str::trim).collect();
        if !(7..=10).contains(&fields.len()) {
            return Err(error(format!(
                "{} comma-separated fields, expected 7 to 10",
                fields.len()
            )));
        }
        let number = |i: usize| -> Result<f64, MotParseError> {
            fields[i]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| error(format!("field {} {:?} is not a number", i + 1, fields[i])))
        };
        let whole = |i: usize| -> Result<u64, MotParseError> {
            let v = number(i)?;
            if v >= 0.0 && v.fract() == 0.0 {
                Ok(v as u64)
            } else {
                Err(error(format!(
                    "field {} {:?} is not a whole number",
                    i + 1,
                    fields[i]
                )))
            }
        };
        let frame = whole(0)?;
        let id = match number(1)? {
            -1.0 => -1,
            _ => whole(1)? as i64,
        };
        if frame == 0 {
            return Err(error("frames are numbered from 1".into()));
        }
        let (x, y, w, h) = (number(2)?, number(3)?, number(4)?, number(5)?);
        let optional = |i: usize| -> Result<Option<f64>, MotParseError> {
            if i >= fields.len() {
                return Ok(None);
            }
            let v = number(i)?;
            Ok((v != -1.0).then_some(v))
        };
        Ok(Self {
            frame,
            id,
            bbox: [x - 1.0, y - 1.0, x - 1.0 + w, y - 1.0 + h].map(|v| v as f32),
            score: number(6)? as f32,
            class: optional(7)?.map_or(0, |c| c.max(0.0) as usize),
            visibility: optional(8)?.map(|v| v as f32),
        })
    }
}

/// Parses a whole MOT file's text; blank lines are skipped.
pub fn parse_mot(text: &str) -> Result<Vec<MotRow>, MotParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| MotRow::parse(l, i + 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_with_one_based_pixels() {
        let row = MotRow {
            frame: 3,
            id: 7,
            bbox: [9.0, 19.5, 29.0, 60.0],
            score: 0.875,
            class: 2,
            visibility: None,
        };
        let line = row.result_line();
        assert_eq!(line, "3,7,10.00,20.50,20.00,40.50,0.8750,2,-1,-1");
        assert_eq!(MotRow::parse(&line, 1), Ok(row.clone()));
        let gt = MotRow {
            score: 1.0,
            visibility: Some(0.5),
            ..row
        };
        assert_eq!(
            gt.ground_truth_line(),
            "3,7,10.00,20.50,20.00,40.50,1,2,0.500"
        );
        assert_eq!(MotRow::parse(&gt.ground_truth_line(), 1), Ok(gt));
    }

    #[test]
    fn bad_lines_name_their_line_and_field() {
        let text = "1,1,1,1,5,5,1,1,1\n\n2,x,1,1,5,5,1,1,1\n";
        let e = parse_mot(text).expect_err("field 2 is not a number");
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("field 2"), "{e}");
        assert!(MotRow::parse("0,1,1,1,5,5,1", 4).is_err());
        assert!(MotRow::parse("1,1,1,1,5", 5).is_err());
        assert_eq!(MotRow::parse("1,-1,1,1,5,5,0.5", 6).map(|r| r.id), Ok(-1));
        assert!(MotRow::parse("1,-2,1,1,5,5,0.5", 7).is_err());
    }
}
