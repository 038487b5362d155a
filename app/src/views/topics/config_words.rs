//! Topic config values in words ("7 days", "1 GiB", "unlimited"), for the topic page
//! (which keeps the raw value on hover).

use crate::views::plural;

/// A config value in words when they say more than the raw value: durations of `*.ms`
/// keys ("7 days"; "unlimited" for -1 and for i64::MAX, Kafka's "no limit"), sizes of
/// `*.bytes` keys ("1 GiB"; "unlimited" for -1), booleans ("yes", "no"). None when the
/// raw value is as clear (or not a number where one is expected).
pub fn human_config(name: &str, value: &str) -> Option<String> {
    let v = value.trim();
    let words = if name.ends_with(".ms") {
        duration_words(v.parse().ok()?)?
    } else if name.ends_with(".bytes") {
        size_words(v.parse().ok()?)?
    } else {
        match v {
            "true" => "yes".to_string(),
            "false" => "no".to_string(),
            _ => return None,
        }
    };
    (words != value).then_some(words)
}

/// Milliseconds in words, every unit that is not zero: "7 days", "1 hour 30 minutes",
/// "1500 ms" is "1 second 500 ms". -1 and i64::MAX are "unlimited"; other negative values
/// have no words (None).
pub fn duration_words(ms: i64) -> Option<String> {
    if ms == -1 || ms == i64::MAX {
        return Some("unlimited".to_string());
    }
    if ms < 0 {
        return None;
    }
    if ms == 0 {
        return Some("0 ms".to_string());
    }
    const UNITS: [(i64, &str); 4] = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    let mut rest = ms;
    let mut parts = Vec::new();
    for (size, noun) in UNITS {
        if rest >= size {
            parts.push(plural(rest / size, noun));
            rest %= size;
        }
    }
    if rest > 0 {
        parts.push(format!("{rest} ms"));
    }
    Some(parts.join(" "))
}

/// Bytes in binary units: "1 GiB" when exact, "1.0 MiB" to one decimal otherwise,
/// "14 bytes" below 1 KiB. -1 is "unlimited"; other negative values have no words (None).
pub fn size_words(bytes: i64) -> Option<String> {
    if bytes == -1 {
        return Some("unlimited".to_string());
    }
    if bytes < 0 {
        return None;
    }
    const UNITS: [(i64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size {
            return Some(if bytes % size == 0 {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{:.1} {unit}", bytes as f64 / size as f64)
            });
        }
    }
    Some(plural(bytes, "byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(604_800_000).as_deref(), Some("7 days"));
        assert_eq!(duration_words(86_400_000).as_deref(), Some("1 day"));
        assert_eq!(duration_words(3_600_000).as_deref(), Some("1 hour"));
        assert_eq!(
            duration_words(5_400_000).as_deref(),
            Some("1 hour 30 minutes")
        );
        assert_eq!(duration_words(1_500).as_deref(), Some("1 second 500 ms"));
        assert_eq!(duration_words(0).as_deref(), Some("0 ms"));
        assert_eq!(duration_words(-1).as_deref(), Some("unlimited"));
        assert_eq!(duration_words(i64::MAX).as_deref(), Some("unlimited"));
        assert_eq!(duration_words(-2), None, "no meaning of its own here");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size_words(1 << 30).as_deref(), Some("1 GiB"));
        assert_eq!(size_words(1_048_588).as_deref(), Some("1.0 MiB"));
        assert_eq!(size_words(1_536).as_deref(), Some("1.5 KiB"));
        assert_eq!(size_words(14).as_deref(), Some("14 bytes"));
        assert_eq!(size_words(1).as_deref(), Some("1 byte"));
        assert_eq!(size_words(-1).as_deref(), Some("unlimited"));
        assert_eq!(size_words(-5), None);
    }

    #[test]
    fn config_values_get_words_only_where_they_help() {
        let h = |k: &str, v: &str| human_config(k, v);
        assert_eq!(h("retention.ms", "604800000").as_deref(), Some("7 days"));
        assert_eq!(h("retention.ms", "-1").as_deref(), Some("unlimited"));
        assert_eq!(
            h("max.compaction.lag.ms", "9223372036854775807").as_deref(),
            Some("unlimited")
        );
        assert_eq!(h("retention.bytes", "-1").as_deref(), Some("unlimited"));
        assert_eq!(h("segment.bytes", "1073741824").as_deref(), Some("1 GiB"));
        assert_eq!(
            h("unclean.leader.election.enable", "false").as_deref(),
            Some("no")
        );
        assert_eq!(h("cleanup.policy", "delete"), None);
        assert_eq!(h("min.insync.replicas", "1"), None);
        assert_eq!(
            h("retention.ms", "soon"),
            None,
            "not a number: shown as it is"
        );
    }
}
