//! Average precision from a precision/recall curve, as the VOC devkit computes it.

/// Which AP the evaluation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApMetric {
    /// VOC2007's 11-point interpolated AP (the SSD paper's number): the mean over recall
    /// thresholds `t = k * 0.1` (k = 0..=10, computed in `f64` exactly so, as numpy's
    /// `arange(0., 1.1, 0.1)` does) of the best precision at recall `>= t`, 0 where none.
    #[default]
    Voc07,
    /// VOC2010+ area under the interpolated (monotone) precision/recall curve.
    Area,
}

impl ApMetric {
    /// The name used on the command line and in JSON (`voc07`, `area`).
    pub fn name(self) -> &'static str {
        match self {
            ApMetric::Voc07 => "voc07",
            ApMetric::Area => "area",
        }
    }
}

impl std::str::FromStr for ApMetric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "voc07" | "11point" | "11-point" => Ok(ApMetric::Voc07),
            "area" | "voc10" | "voc2010" => Ok(ApMetric::Area),
            other => Err(format!("unknown metric {other:?} (expected voc07 or area)")),
        }
    }
}

impl std::fmt::Display for ApMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// AP of one class from its cumulative `recall` and `precision` (detections in score order).
pub fn average_precision(recall: &[f64], precision: &[f64], metric: ApMetric) -> f64 {
    match metric {
        ApMetric::Voc07 => voc07_ap(recall, precision),
        ApMetric::Area => area_ap(recall, precision),
    }
}

/// VOC07 11-point AP (see [`ApMetric::Voc07`]).
pub fn voc07_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let mut ap = 0.0;
    for k in 0..=10 {
        let t = f64::from(k) * 0.1;
        let p = recall
            .iter()
            .zip(precision)
            .filter(|(r, _)| **r >= t)
            .map(|(_, p)| *p)
            .fold(None, |best: Option<f64>, p| {
                Some(best.map_or(p, |b| b.max(p)))
            })
            .unwrap_or(0.0);
        ap += p / 11.0;
    }
    ap
}

/// VOC2010+ area AP (see [`ApMetric::Area`]): sentinels `(0, 0)` and `(1, 0)`, precision made
/// monotone from the right, then the sum of precision times recall steps.
pub fn area_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let mut mrec = Vec::with_capacity(recall.len() + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(precision.len() + 2);
    mpre.push(0.0);
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    for i in (1..mpre.len()).rev() {
        mpre[i - 1] = mpre[i - 1].max(mpre[i]);
    }
    let mut ap = 0.0;
    for i in 0..mrec.len() - 1 {
        if mrec[i + 1] != mrec[i] {
            ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1];
        }
    }
    ap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_empty_curves() {
        assert!((voc07_ap(&[0.5, 1.0], &[1.0, 1.0]) - 1.0).abs() < 1e-15);
        assert_eq!(area_ap(&[0.5, 1.0], &[1.0, 1.0]), 1.0);
        assert_eq!(voc07_ap(&[], &[]), 0.0);
        assert_eq!(area_ap(&[], &[]), 0.0);
    }

    #[test]
    fn thresholds_are_k_times_a_tenth_not_decimals() {
        // 3 * 0.1 = 0.30000000000000004 > 0.3: a recall of exactly 0.3 does not reach the k = 3
        // threshold, so only k = 0, 1, 2 see the precision.
        let ap = voc07_ap(&[0.3], &[1.0]);
        assert!((ap - 3.0 / 11.0).abs() < 1e-15, "{ap}");
        // Likewise 6 * 0.1 = 0.6000000000000001: a recall of 3/5 reaches k = 0..=5 only.
        let six = 6.0 * 0.1;
        assert!(six > 0.6);
        assert!((voc07_ap(&[0.6], &[1.0]) - 6.0 / 11.0).abs() < 1e-15);
        assert!((voc07_ap(&[six], &[1.0]) - 7.0 / 11.0).abs() < 1e-15);
    }

    #[test]
    fn area_uses_the_monotone_envelope() {
        // Recall 0.5 at precision 0.5, then recall 1.0 at precision 1.0 (a late true positive):
        // the envelope is 1.0 everywhere.
        assert!((area_ap(&[0.5, 1.0], &[0.5, 1.0]) - 1.0).abs() < 1e-15);
        // Recall 0.5 at precision 1, then stuck: half the area.
        assert!((area_ap(&[0.5, 0.5], &[1.0, 0.5]) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn metric_names_parse() {
        assert_eq!("voc07".parse::<ApMetric>(), Ok(ApMetric::Voc07));
        assert_eq!("AREA".parse::<ApMetric>(), Ok(ApMetric::Area));
        assert!("map".parse::<ApMetric>().is_err());
    }
}
