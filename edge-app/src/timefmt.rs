//! Time formatting for log lines: ISO 8601, the Common Log Format stamp, and the strftime(3)
//! subset plus Fastly's `sec`/`msec`/`usec`/`msec_frac`/`usec_frac` tokens that `%{format}t`
//! accepts.
//!
//! Invariant: all times are UTC (offset `+0000`), as at the edge; no time zone database is needed,
//! which keeps the wasm small.

/// A point in time as microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Micros(pub i64);

impl Micros {
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Micros(d.as_micros() as i64),
            Err(e) => Micros(-(e.duration().as_micros() as i64)),
        }
    }

    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn subsec_micros(self) -> i64 {
        self.0.rem_euclid(1_000_000)
    }
}

/// Broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
    /// 1-based day of the year.
    pub yday: u32,
}

impl Civil {
    pub fn from_secs(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
        let yday = (days - days_from_civil(year, 1, 1)) as u32 + 1;
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: ((rem % 3600) / 60) as u32,
            second: (rem % 60) as u32,
            weekday,
            yday,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTHS_FULL: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const DAYS_FULL: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// `2026-11-21T07:51:27.123456+00:00` (RFC 3339, microseconds).
pub fn iso8601(t: Micros) -> String {
    let mut out = String::with_capacity(32);
    push_iso8601(&mut out, t);
    out
}

/// Appends [`iso8601`]'s text to `out` without formatting machinery (it is on every JSON line).
pub fn push_iso8601(out: &mut String, t: Micros) {
    let c = Civil::from_secs(t.secs());
    if (0..=9999).contains(&c.year) {
        push_digits(out, c.year as u64, 4);
    } else {
        out.push_str(&format!("{:04}", c.year));
    }
    out.push('-');
    push_digits(out, u64::from(c.month), 2);
    out.push('-');
    push_digits(out, u64::from(c.day), 2);
    out.push('T');
    push_digits(out, u64::from(c.hour), 2);
    out.push(':');
    push_digits(out, u64::from(c.minute), 2);
    out.push(':');
    push_digits(out, u64::from(c.second), 2);
    out.push('.');
    push_digits(out, t.subsec_micros() as u64, 6);
    out.push_str("+00:00");
}

/// `n` in exactly `width` decimal digits, zero-padded (`n` must fit).
fn push_digits(out: &mut String, n: u64, width: u32) {
    let mut div = 10u64.pow(width - 1);
    for _ in 0..width {
        out.push(char::from(b'0' + ((n / div) % 10) as u8));
        div /= 10;
    }
}

/// `[10/Oct/2000:13:55:36 +0000]`, the `%t` of the Common Log Format.
pub fn clf(t: Micros) -> String {
    let c = Civil::from_secs(t.secs());
    format!(
        "[{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000]",
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// One piece of a parsed `%{format}t` time format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimePiece {
    Literal(String),
    /// A strftime conversion character (`Y`, `m`, ...).
    Conv(char),
    Sec,
    Msec,
    Usec,
    MsecFrac,
    UsecFrac,
}

/// A parsed `%{format}t`: which instant and how to print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeFormat {
    /// `end:` prefix: the time the line is written instead of the request start.
    pub at_end: bool,
    pub pieces: Vec<TimePiece>,
}

const SUPPORTED_CONVERSIONS: &str = "aAbBdDeFHIjklmMnpRsStTuwyYzZ%h";

impl TimeFormat {
    /// Parses a strftime format; the error names the unsupported conversion.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (at_end, body) = if let Some(rest) = spec.strip_prefix("end:") {
            (true, rest)
        } else if let Some(rest) = spec.strip_prefix("begin:") {
            (false, rest)
        } else {
            (false, spec)
        };
        let whole = match body {
            "sec" => Some(TimePiece::Sec),
            "msec" => Some(TimePiece::Msec),
            "usec" => Some(TimePiece::Usec),
            "msec_frac" => Some(TimePiece::MsecFrac),
            "usec_frac" => Some(TimePiece::UsecFrac),
            _ => None,
        };
        if let Some(piece) = whole {
            return Ok(TimeFormat {
                at_end,
                pieces: vec![piece],
            });
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            match chars.next() {
                Some(conv) if SUPPORTED_CONVERSIONS.contains(conv) => {
                    if !literal.is_empty() {
                        pieces.push(TimePiece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(TimePiece::Conv(conv));
                }
                Some(conv) => return Err(format!("unsupported strftime conversion %{conv}")),
                None => return Err("strftime format ends with a lone %".to_string()),
            }
        }
        if !literal.is_empty() {
            pieces.push(TimePiece::Literal(literal));
        }
        Ok(TimeFormat { at_end, pieces })
    }

    pub fn render(&self, out: &mut String, t: Micros) {
        use std::fmt::Write;
        let c = Civil::from_secs(t.secs());
        for piece in &self.pieces {
            // Writing to a String cannot fail.
            let _ = match piece {
                TimePiece::Literal(s) => write!(out, "{s}"),
                TimePiece::Sec => write!(out, "{}", t.secs()),
                TimePiece::Msec => write!(out, "{}", t.0.div_euclid(1000)),
                TimePiece::Usec => write!(out, "{}", t.0),
                TimePiece::MsecFrac => write!(out, "{:03}", t.subsec_micros() / 1000),
                TimePiece::UsecFrac => write!(out, "{:06}", t.subsec_micros()),
                TimePiece::Conv(conv) => write_conv(out, *conv, &c, t),
            };
        }
    }
}

fn write_conv(out: &mut String, conv: char, c: &Civil, t: Micros) -> std::fmt::Result {
    use std::fmt::Write;
    let hour12 = match c.hour % 12 {
        0 => 12,
        h => h,
    };
    match conv {
        'a' => write!(out, "{}", DAYS[c.weekday as usize]),
        'A' => write!(out, "{}", DAYS_FULL[c.weekday as usize]),
        'b' | 'h' => write!(out, "{}", MONTHS[(c.month - 1) as usize]),
        'B' => write!(out, "{}", MONTHS_FULL[(c.month - 1) as usize]),
        'd' => write!(out, "{:02}", c.day),
        'D' => write!(
            out,
            "{:02}/{:02}/{:02}",
            c.month,
            c.day,
            c.year.rem_euclid(100)
        ),
        'e' => write!(out, "{:2}", c.day),
        'F' => write!(out, "{:04}-{:02}-{:02}", c.year, c.month, c.day),
        'H' => write!(out, "{:02}", c.hour),
        'I' => write!(out, "{:02}", hour12),
        'j' => write!(out, "{:03}", c.yday),
        'k' => write!(out, "{:2}", c.hour),
        'l' => write!(out, "{:2}", hour12),
        'm' => write!(out, "{:02}", c.month),
        'M' => write!(out, "{:02}", c.minute),
        'n' => write!(out, " "), // a newline would end the log line
        'p' => write!(out, "{}", if c.hour < 12 { "AM" } else { "PM" }),
        'R' => write!(out, "{:02}:{:02}", c.hour, c.minute),
        's' => write!(out, "{}", t.secs()),
        'S' => write!(out, "{:02}", c.second),
        't' => write!(out, "\t"),
        'T' => write!(out, "{:02}:{:02}:{:02}", c.hour, c.minute, c.second),
        'u' => write!(out, "{}", if c.weekday == 0 { 7 } else { c.weekday }),
        'w' => write!(out, "{}", c.weekday),
        'y' => write!(out, "{:02}", c.year.rem_euclid(100)),
        'Y' => write!(out, "{:04}", c.year),
        'z' => write!(out, "+0000"),
        'Z' => write!(out, "UTC"),
        '%' => write!(out, "%"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2000-10-10T13:55:36.123456Z
    const T: Micros = Micros(971_186_136_123_456);

    #[test]
    fn civil_matches_known_dates() {
        let c = Civil::from_secs(971_186_136);
        assert_eq!((c.year, c.month, c.day), (2000, 10, 10));
        assert_eq!((c.hour, c.minute, c.second), (13, 55, 36));
        assert_eq!(c.weekday, 2); // Tuesday
        assert_eq!(c.yday, 284);
        let leap = Civil::from_secs(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
        let before_epoch = Civil::from_secs(-1);
        assert_eq!(
            (before_epoch.year, before_epoch.month, before_epoch.day),
            (1969, 12, 31)
        );
        assert_eq!(before_epoch.second, 59);
    }

    #[test]
    fn iso_and_clf() {
        assert_eq!(iso8601(T), "2000-10-10T13:55:36.123456+00:00");
        assert_eq!(clf(T), "[10/Oct/2000:13:55:36 +0000]");
    }

    #[test]
    fn strftime_subset_and_fastly_tokens() {
        let render = |spec: &str| {
            let f = TimeFormat::parse(spec).expect(spec);
            let mut s = String::new();
            f.render(&mut s, T);
            s
        };
        assert_eq!(render("%Y-%m-%dT%H:%M:%S%z"), "2000-10-10T13:55:36+0000");
        assert_eq!(
            render("%a %A %b %B %j %I%p %%"),
            "Tue Tuesday Oct October 284 01PM %"
        );
        assert_eq!(render("begin:%F %T"), "2000-10-10 13:55:36");
        assert_eq!(render("sec"), "971186136");
        assert_eq!(render("msec"), "971186136123");
        assert_eq!(render("usec"), "971186136123456");
        assert_eq!(render("msec_frac"), "123");
        assert_eq!(render("usec_frac"), "123456");
        assert!(TimeFormat::parse("end:msec").expect("end").at_end);
    }

    #[test]
    fn strftime_errors_name_the_conversion() {
        assert_eq!(
            TimeFormat::parse("%Y %Q").unwrap_err(),
            "unsupported strftime conversion %Q"
        );
        assert!(TimeFormat::parse("%").is_err());
    }
}
