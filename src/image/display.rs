//! Image facts as `docker images` and `docker history` print them.
//!
//! - [`human_age`]: "3 hours ago".
//! - [`human_size`]: "1.23MB" (powers of 1000, three significant digits).

use std::time::SystemTime;

/// "3 hours ago", as `docker images` prints ages.
pub fn human_age(created: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(created).unwrap_or_default().as_secs();
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("{} {unit} ago", if unit == "hour" { "an".to_string() } else { "1".to_string() })
        } else {
            format!("{n} {unit}s ago")
        }
    };
    match secs {
        0 => "Less than a second ago".to_string(),
        1..60 => plural(secs, "second"),
        60..3600 => {
            let m = secs / 60;
            if m == 1 { "About a minute ago".to_string() } else { format!("{m} minutes ago") }
        }
        3600..172_800 => {
            let h = secs / 3600;
            if h == 1 { "About an hour ago".to_string() } else { format!("{h} hours ago") }
        }
        172_800..1_209_600 => format!("{} days ago", secs / 86_400),
        1_209_600..5_184_000 => format!("{} weeks ago", secs / 604_800),
        5_184_000..63_072_000 => format!("{} months ago", secs / 2_592_000),
        _ => format!("{} years ago", secs / 31_536_000),
    }
}

/// "1.23MB", as Docker prints sizes: powers of 1000, three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn sizes_and_ages_read_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(4_400_000), "4.4MB");
        assert_eq!(human_size(1_234_567_890), "1.23GB");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(human_age(now - Duration::from_secs(7200), now), "2 hours ago");
        assert_eq!(human_age(now - Duration::from_secs(3600), now), "About an hour ago");
    }
}
