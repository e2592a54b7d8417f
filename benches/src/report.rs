//! The figures report's output: one JSON object per line, and the machine it was measured on.
//!
//! Every line is `{"figure": NAME, "value": NUMBER, "unit": UNIT, "target": ..., "target_is": "min" |
//! "max", "machine": ..., "quick": bool, "date": "YYYY-MM-DD", ...context}`. Absolute numbers only
//! indicate (DESIGN §6); ratios taken in the same run are what compare across machines.

use serde_json::{Map, Value};

/// How a figure compares with its target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// No target (context figure).
    None,
    /// The figure should be at least this.
    AtLeast(f64),
    /// The figure should be at most this.
    AtMost(f64),
}

/// The machine a figure came from: CPU model and number of CPUs.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} CPUs")
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Writes figure lines with the run's common fields.
#[derive(Clone, Debug)]
pub struct Reporter {
    machine: String,
    date: String,
    quick: bool,
}

impl Reporter {
    /// A reporter for this machine and date.
    pub fn new(quick: bool) -> Reporter {
        Reporter {
            machine: machine(),
            date: today(),
            quick,
        }
    }

    /// The JSON object of one figure; `context` must be a JSON object (anything else is ignored).
    pub fn line(
        &self,
        figure: &str,
        value: f64,
        unit: &str,
        target: Target,
        context: Value,
    ) -> Value {
        let mut m = Map::new();
        m.insert("figure".into(), figure.into());
        m.insert("value".into(), round(value).into());
        m.insert("unit".into(), unit.into());
        match target {
            Target::None => {}
            Target::AtLeast(t) => {
                m.insert("target".into(), t.into());
                m.insert("target_is".into(), "min".into());
                m.insert("meets_target".into(), (value >= t).into());
            }
            Target::AtMost(t) => {
                m.insert("target".into(), t.into());
                m.insert("target_is".into(), "max".into());
                m.insert("meets_target".into(), (value <= t).into());
            }
        }
        m.insert("machine".into(), self.machine.clone().into());
        m.insert("quick".into(), self.quick.into());
        m.insert("date".into(), self.date.clone().into());
        if let Value::Object(ctx) = context {
            for (k, v) in ctx {
                m.entry(k).or_insert(v);
            }
        }
        Value::Object(m)
    }

    /// Print one figure line on stdout.
    pub fn emit(&self, figure: &str, value: f64, unit: &str, target: Target, context: Value) {
        println!("{}", self.line(figure, value, unit, target, context));
    }
}

/// Four significant digits are all a noisy machine gives.
pub fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return if x.is_finite() { 0.0 } else { -1.0 };
    }
    let mag = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(3 - mag);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_line_has_the_required_fields_and_context() {
        let r = Reporter::new(true);
        let v = r.line(
            "established_mpps_1core",
            12.345_67,
            "Mpps",
            Target::AtLeast(20.0),
            json!({"sessions": 1_032_192, "figure": "not overwritten"}),
        );
        assert_eq!(v["figure"], "established_mpps_1core");
        assert_eq!(v["value"], 12.35);
        assert_eq!(v["unit"], "Mpps");
        assert_eq!(v["target"], 20.0);
        assert_eq!(v["meets_target"], false);
        assert_eq!(v["quick"], true);
        assert_eq!(v["sessions"], 1_032_192);
        assert!(v["machine"].as_str().unwrap().contains("CPUs"));
        let parsed: Value = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(parsed, v);
    }

    #[test]
    fn dates_and_rounding() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(round(1_234_567.0), 1_235_000.0);
        assert_eq!(round(0.012_345), 0.012_35);
        assert_eq!(round(0.0), 0.0);
    }
}
