//! Durations as the config file writes them: `"500ms"`, `"65s"`, `"4m"`, `"2h"`, `"1h30m"`.
//!
//! Layer: config (slow path). Grammar: one or more `<digits><unit>` pieces, units `h`, `m`, `s`,
//! `ms`, each at most once and from the largest to the smallest; no fractions, no signs, no spaces.
//! [`format`] writes the shortest exact single-unit form where one exists, so that
//! `parse(format(d)) == d` for every duration the parser accepts.

use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Reads a duration; on failure, says what is wrong (the caller adds what is valid).
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("it is empty".to_string());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ms: u64 = 0;
    let mut last_unit: Option<usize> = None;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            let c = s[i..].chars().next().unwrap_or(' ');
            return Err(match c {
                '-' => "negative durations are not allowed".to_string(),
                _ => format!("expected a digit at `{}`", &s[i..]),
            });
        }
        let number: u64 = s[start..i]
            .parse()
            .map_err(|_| "the number is too large".to_string())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit.is_empty() {
            return Err(match bytes.get(i) {
                None => format!("`{}` has no unit (ms, s, m or h)", &s[start..i]),
                Some(b'.') | Some(b',') => {
                    "fractions are not allowed; use a smaller unit (\"90s\", not \"1.5m\")"
                        .to_string()
                }
                Some(_) => format!("unexpected `{}`", &s[i..]),
            });
        }
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!("unknown unit `{unit}` (use ms, s, m or h)"));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err("units must go from the largest to the smallest, each once".to_string());
        }
        last_unit = Some(index);
        total_ms = number
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| "the duration is too large".to_string())?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration so that [`parse`] reads it back exactly, in the largest unit that divides it
/// (sub-millisecond parts, which the parser never produces, are dropped).
pub(crate) fn format(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    UNITS.iter().find(|(_, len)| ms % len == 0).map_or_else(
        || format!("{ms}ms"),
        |(unit, len)| format!("{}{unit}", ms / len),
    )
}

/// `"4m" to "120m"`: both ends in the largest unit that divides both, for error messages.
pub(crate) fn format_range(lo: Duration, hi: Duration) -> String {
    let (a, b) = (lo.as_millis(), hi.as_millis());
    let (unit, len) = UNITS
        .iter()
        .find(|(_, len)| a % u128::from(*len) == 0 && b % u128::from(*len) == 0 && b > 0)
        .map_or(("ms", 1), |(u, l)| (*u, u128::from(*l)));
    format!("\"{}{unit}\" to \"{}{unit}\"", a / len, b / len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_unit() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("65s"), Ok(Duration::from_secs(65)));
        assert_eq!(parse("4m"), Ok(Duration::from_secs(240)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m5s250ms"), Ok(Duration::from_millis(65_250)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_malformed_strings() {
        for bad in [
            "",
            "4",
            "m",
            "1.5m",
            "-4m",
            "4 m",
            "4min",
            "4m4m",
            "30s1m",
            "4M",
            "99999999999999999999s",
            "18446744073709551615h",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse("1.5m").unwrap_err().contains("fractions"));
        assert!(parse("4").unwrap_err().contains("no unit"));
    }

    #[test]
    fn format_round_trips() {
        for ms in [
            0u64, 1, 999, 1000, 16_000, 65_000, 240_000, 5_400_000, 7_200_000, 65_250,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Ok(d), "{ms} ms");
        }
        assert_eq!(format(Duration::from_secs(65)), "65s");
        assert_eq!(format(Duration::from_secs(240)), "4m");
        assert_eq!(format(Duration::from_secs(7200)), "2h");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn ranges_use_one_unit() {
        assert_eq!(
            format_range(Duration::from_secs(240), Duration::from_secs(7200)),
            "\"4m\" to \"120m\""
        );
        assert_eq!(
            format_range(Duration::ZERO, Duration::from_secs(600)),
            "\"0m\" to \"10m\""
        );
        assert_eq!(
            format_range(Duration::from_secs(1), Duration::from_secs(7200)),
            "\"1s\" to \"7200s\""
        );
    }
}
