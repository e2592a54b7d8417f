//! Configuration errors: what went wrong, at which key, on which line.
//!
//! Layer: config (slow path only, run once at start-up and on reload). Every error the crate returns
//! names the dotted key (`nat.timeouts.tcp_idle`, `nat.static[1].public`), a 1-based line and column
//! in the file, and what would have been valid. Validation works on byte spans
//! ([`Located`]); they are turned into lines and columns once, against the source text, in
//! [`Located::into_error`]. Nothing here panics on any input: offsets past the end or inside a
//! multi-byte character are clamped.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a configuration was refused. [`ConfigError::Invalid`] carries one of these plus the key and
/// the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file is not valid TOML.
    #[error("TOML syntax error: {message}")]
    Syntax {
        /// The TOML parser's explanation.
        message: String,
    },
    /// A key that the schema does not have.
    #[error("unknown key; valid keys here: {valid}")]
    UnknownKey {
        /// The keys allowed at that place.
        valid: String,
    },
    /// A required key is absent.
    #[error("required key is missing; expected {expected}")]
    MissingKey {
        /// What the key should hold.
        expected: String,
    },
    /// The value has the wrong TOML type (a string where an integer belongs, ...).
    #[error("wrong type: found {found}; expected {expected}")]
    WrongType {
        /// The value found, as the TOML parser describes it.
        found: String,
        /// What the key should hold.
        expected: String,
    },
    /// A string or number that is not one of the allowed values.
    #[error("invalid value {value}; valid: {valid}")]
    BadValue {
        /// The value found.
        value: String,
        /// What would be valid.
        valid: String,
    },
    /// A duration that cannot be read.
    #[error(
        "invalid duration {value}: {reason}; valid: a whole number with a unit, like \"500ms\", \
         \"65s\", \"4m\" or \"2h\" (units may be combined: \"1h30m\")"
    )]
    BadDuration {
        /// The string found.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A string that is not an IPv4 address.
    #[error("invalid IPv4 address {value}; valid: a dotted-quad address such as \"203.0.113.10\"")]
    BadAddress {
        /// The string found.
        value: String,
    },
    /// A string that is not an IPv4 prefix, or one with host bits set.
    #[error("invalid IPv4 prefix {value}: {reason}")]
    BadPrefix {
        /// The string found.
        value: String,
        /// What is wrong with it and what would be valid.
        reason: String,
    },
    /// A number or duration outside its allowed range.
    #[error("{value} is out of range; valid: {valid}")]
    OutOfRange {
        /// The value found.
        value: String,
        /// The allowed range.
        valid: String,
    },
    /// A `[low, high]` port range whose low end is above its high end.
    #[error("port range [{low}, {high}] is reversed; valid: [low, high] with low <= high")]
    PortRangeReversed {
        /// The first element.
        low: u16,
        /// The second element.
        high: u16,
    },
    /// A port count that must come in blocks of 8 does not.
    #[error(
        "{value} is not a multiple of 8; valid: a multiple of 8 such as {} or {}",
        value / 8 * 8,
        (value / 8 + 1) * 8
    )]
    NotMultipleOf8 {
        /// The value found.
        value: u32,
    },
    /// More than 16 public addresses after expanding the prefixes.
    #[error(
        "{count} public addresses; valid: 1 to 16 addresses, nat.public_ips and the expanded \
         nat.public_prefixes together"
    )]
    TooManyPublicIps {
        /// How many addresses the lists expand to.
        count: u64,
    },
    /// Neither `nat.public_ips` nor `nat.public_prefixes` gives an address.
    #[error(
        "no public address; valid: at least one address in nat.public_ips or nat.public_prefixes"
    )]
    NoPublicIps,
    /// A value that must be unique appears twice.
    #[error(
        "{value} appears more than once (also at line {first_line}); valid: each at most once"
    )]
    Duplicate {
        /// The repeated value.
        value: String,
        /// The 1-based line of its first appearance.
        first_line: u32,
    },
    /// A static 1:1 public address is also one of the SNAT public addresses.
    #[error(
        "static public address {address} is also a SNAT address in nat.public_ips/public_prefixes; \
         valid: a public address used by no other mapping and not in the SNAT pool"
    )]
    StaticCollidesWithPublic {
        /// The colliding address.
        address: Ipv4Addr,
    },
    /// A preallocated pool larger than the default tier table covers.
    #[error(
        "{instances} instances exceed the default preallocation table; valid: at most 1000 \
         instances, or an explicit nat.preallocated.ports_per_instance"
    )]
    PoolTooLarge {
        /// The number of instances after expanding the prefixes.
        instances: u64,
    },
    /// The preallocated pool does not fit in the SNAT ports of the public addresses.
    #[error(
        "{instances} instances x {ports_per_instance} ports do not fit: the public addresses hold \
         at most {capacity} such ranges; valid: fewer instances, fewer ports per instance, more \
         public addresses or a wider nat.port_range"
    )]
    PoolDoesNotFit {
        /// The number of instances.
        instances: u64,
        /// The ports each instance gets.
        ports_per_instance: u32,
        /// How many ranges of that size the public addresses hold.
        capacity: u64,
    },
    /// A list whose length is tied to another key has the wrong length.
    #[error("{len} entries; valid: exactly {expected} ({reason})")]
    LengthMismatch {
        /// The length found.
        len: usize,
        /// The length required.
        expected: usize,
        /// Which key fixes the length.
        reason: String,
    },
    /// Two prefixes or ranges that must be disjoint overlap.
    #[error("{value} overlaps {other}; valid: non-overlapping entries")]
    Overlap {
        /// The later entry.
        value: String,
        /// The entry it overlaps.
        other: String,
    },
    /// Values that are fine alone but impossible together.
    #[error("{message}")]
    Conflict {
        /// The explanation, including what would be valid.
        message: String,
    },
}

/// A refused configuration: the file could not be read, or its content is not a valid config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the config file: {source}", path.display())]
    Read {
        /// The file named.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file was read, but its content is not a valid configuration.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

impl ConfigError {
    /// The reason, for an invalid configuration.
    pub fn kind(&self) -> Option<&ErrorKind> {
        self.diagnostic().map(|d| &d.kind)
    }

    /// The dotted key the error is about (`nat.timeouts.tcp_idle`), for an invalid configuration.
    pub fn key(&self) -> Option<&str> {
        self.diagnostic().map(|d| d.key.as_str())
    }

    /// The 1-based line, for an invalid configuration.
    pub fn line(&self) -> Option<u32> {
        self.diagnostic().map(|d| d.line)
    }

    /// The 1-based column (in characters), for an invalid configuration.
    pub fn column(&self) -> Option<u32> {
        self.diagnostic().map(|d| d.column)
    }

    /// The details of an invalid configuration.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid(d) => Some(d),
        }
    }

    /// Names the file the configuration came from, so that the message reads `FILE:LINE:COL: ...`.
    pub fn with_file(self, file: &Path) -> ConfigError {
        match self {
            ConfigError::Invalid(mut d) => {
                d.file = Some(file.to_path_buf());
                ConfigError::Invalid(d)
            }
            other => other,
        }
    }
}

/// Where and why a configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    file: Option<PathBuf>,
    key: String,
    line: u32,
    column: u32,
    kind: ErrorKind,
}

impl Diagnostic {
    /// The file, when the config was loaded from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The dotted key (`nat.static[1].public`; array indices count from 0).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The 1-based line.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The 1-based column, counted in characters.
    pub fn column(&self) -> u32 {
        self.column
    }

    /// The reason.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{}:{}: ", file.display(), self.line, self.column)?,
            None => write!(f, "line {}, column {}: ", self.line, self.column)?,
        }
        write!(f, "`{}`: {}", self.key, self.kind)
    }
}

/// An error found during validation, located by a byte span of the source (or by its key alone,
/// for a missing key, whose table is then looked up in the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) key: String,
    pub(crate) span: Option<Range<usize>>,
    pub(crate) kind: ErrorKind,
    /// For [`ErrorKind::Duplicate`]: the byte offset of the first occurrence.
    pub(crate) first: Option<usize>,
}

impl Located {
    /// An error at `span`.
    pub(crate) fn at(key: impl Into<String>, span: Range<usize>, kind: ErrorKind) -> Located {
        Located {
            key: key.into(),
            span: Some(span),
            kind,
            first: None,
        }
    }

    /// Records where the first of two duplicates is, for [`ErrorKind::Duplicate`].
    pub(crate) fn with_first(mut self, offset: usize) -> Located {
        self.first = Some(offset);
        self
    }

    /// An error about a key that is absent: located at its table's header when there is one.
    pub(crate) fn missing(key: impl Into<String>, expected: impl Into<String>) -> Located {
        Located {
            key: key.into(),
            span: None,
            kind: ErrorKind::MissingKey {
                expected: expected.into(),
            },
            first: None,
        }
    }

    /// Converts byte spans into a line and column of `src`.
    pub(crate) fn into_error(mut self, src: &str) -> ConfigError {
        if let (ErrorKind::Duplicate { first_line, .. }, Some(first)) = (&mut self.kind, self.first)
        {
            *first_line = line_of(src, first);
        }
        let offset = match &self.span {
            Some(span) => span.start,
            None => locate_enclosing(src, &self.key),
        };
        let (line, column) = line_col(src, offset);
        // A key is always named: TOML allows the empty key `"" = 1`, and a broken header `[]`
        // has no name at all.
        let key = match self.key.as_str() {
            "" => "(top level)".to_string(),
            k if k.ends_with('.') => format!("{k}\"\""),
            _ => self.key,
        };
        ConfigError::Invalid(Box::new(Diagnostic {
            file: None,
            key,
            line,
            column,
            kind: self.kind,
        }))
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `src`; clamped, never panics.
pub(crate) fn line_col(src: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (saturate(line), saturate(column))
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The 1-based line of byte `offset` in `src`.
pub(crate) fn line_of(src: &str, offset: usize) -> u32 {
    line_col(src, offset).0
}

/// One step of a dotted key path: a table key, or an index into an array of tables.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'k> {
    Key(&'k str),
    Index(usize),
}

fn steps(key: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Step::Key(name));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped.find(']').unwrap_or(stripped.len());
            if let Ok(i) = stripped[..end].parse() {
                out.push(Step::Index(i));
            }
            rest = stripped.get(end + 1..).unwrap_or("");
        }
    }
    out
}

/// The header of the innermost table around `key` that is written as a `[header]`, or the start
/// of the file.
fn locate_enclosing(src: &str, key: &str) -> usize {
    let mut key = key;
    loop {
        if let Some(offset) = locate_table(src, key) {
            return offset;
        }
        match key.rfind(['.', '[']) {
            Some(i) => key = &key[..i],
            None => return 0,
        }
    }
}

/// Finds the header of the table that holds `key` (`[interfaces.outside]` for
/// `interfaces.outside.gateway`, the second `[[nat.static]]` for `nat.static[1].public`) and returns
/// its byte offset. Used to place errors about missing keys. Best effort: `None` when the table is
/// written inline or with dotted keys.
fn locate_table(src: &str, key: &str) -> Option<usize> {
    let mut path = steps(key);
    path.pop();
    let index = match path.last() {
        Some(Step::Index(i)) => {
            let i = *i;
            path.pop();
            Some(i)
        }
        _ => None,
    };
    if path.is_empty() {
        return None;
    }
    let name: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(*k),
            Step::Index(_) => None,
        })
        .collect();
    let wanted = name.join(".");
    let mut seen = 0usize;
    let mut offset = 0usize;
    for line in src.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let (open, close) = if index.is_some() {
            ("[[", "]]")
        } else {
            ("[", "]")
        };
        if let Some(inner) = trimmed.strip_prefix(open) {
            if let Some(end) = inner.find(close) {
                let header: String = inner[..end]
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
                    .collect();
                if header == wanted {
                    if index.is_none_or(|i| i == seen) {
                        return Some(offset + (line.len() - trimmed.len()));
                    }
                    seen += 1;
                }
            }
        }
        offset += line.len();
    }
    None
}

/// Best-effort dotted key for a TOML syntax error on 1-based `line`: the last table header before
/// it, plus the key written on that line, if any.
pub(crate) fn key_at_line(src: &str, line: u32) -> String {
    let mut table = String::new();
    for (i, text) in src.lines().enumerate() {
        let n = i + 1;
        let trimmed = text.trim();
        let header = trimmed
            .strip_prefix("[[")
            .and_then(|s| s.find("]]").map(|e| &s[..e]))
            .or_else(|| {
                trimmed
                    .strip_prefix('[')
                    .and_then(|s| s.find(']').map(|e| &s[..e]))
            });
        if let Some(h) = header {
            let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
            if n as u64 == u64::from(line) && !h.is_empty() {
                return h;
            }
            if n as u64 == u64::from(line) {
                break;
            }
            if !h.is_empty() {
                table = h;
            }
            continue;
        }
        if n as u64 == u64::from(line) {
            if let Some(eq) = trimmed.find('=') {
                let k: String = trimmed[..eq]
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                if !k.is_empty() && !k.starts_with('#') {
                    return if table.is_empty() {
                        k
                    } else {
                        format!("{table}.{k}")
                    };
                }
            }
            break;
        }
    }
    if table.is_empty() {
        "(top level)".to_string()
    } else {
        table
    }
}

/// Turns a `toml` deserialization error, with the key path serde was at, into a [`Located`].
pub(crate) fn from_toml(
    path: &serde_path_to_error::Path,
    err: &toml::de::Error,
    src: &str,
) -> Located {
    let key = render_path(path);
    let message = err.message().trim().replace('\n', "; ");
    let span = err.span();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let name = rest.split('`').nth(1).unwrap_or("");
        // serde_path_to_error already ends the path with the unknown key; add it if not.
        let key = if key.rsplit('.').next() == Some(name) {
            key
        } else {
            join(&key, name)
        };
        let kind = ErrorKind::UnknownKey {
            valid: split_expected(rest).1,
        };
        return Located {
            key,
            span,
            kind,
            first: None,
        };
    }
    if message.starts_with("missing field ") {
        let field = message.split('`').nth(1).unwrap_or("");
        let key = join(&key, field);
        let expected = crate::schema::expected(&key);
        return Located::missing(key, expected);
    }
    // Syntax errors happen before serde sees any key: the path is empty.
    if key.is_empty() {
        let line = span.as_ref().map_or(1, |s| line_of(src, s.start));
        return Located {
            key: key_at_line(src, line),
            span,
            kind: ErrorKind::Syntax { message },
            first: None,
        };
    }
    let found = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .or_else(|| message.strip_prefix("invalid length "))
        .map_or_else(|| message.clone(), |rest| split_expected(rest).0);
    let kind = ErrorKind::WrongType {
        found,
        expected: crate::schema::expected(&key),
    };
    Located {
        key,
        span,
        kind,
        first: None,
    }
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// Splits serde's "X, expected Y" into ("X", "Y").
fn split_expected(s: &str) -> (String, String) {
    match s.rfind(", expected ") {
        Some(i) => (s[..i].to_string(), s[i + ", expected ".len()..].to_string()),
        None => match s.find(", there are no fields") {
            Some(i) => (
                s[..i].to_string(),
                "none (this table takes no keys)".to_string(),
            ),
            None => (s.to_string(), "see docs/config.md".to_string()),
        },
    }
}

/// `nat.static[1].public` from serde's path, without the private segments of `toml::Spanned`.
fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__serde_spanned_private") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_in_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // "é" is two bytes: the byte after it is the third character.
        assert_eq!(line_col(src, 9), (2, 3));
    }

    #[test]
    fn line_col_clamps_bad_offsets() {
        let src = "é";
        assert_eq!(line_col(src, 1), (1, 1));
        assert_eq!(line_col(src, 99), (1, 2));
        assert_eq!(line_col("", 5), (1, 1));
    }

    #[test]
    fn locates_tables_and_nth_array_entries() {
        let src = "[nat]\nx = 1\n[[nat.static]]\na = 1\n  [[ nat.static ]]\nb = 2\n";
        assert_eq!(locate_table(src, "nat.port_range"), Some(0));
        assert_eq!(locate_table(src, "nat.static[0].public"), Some(12));
        assert_eq!(
            line_col(src, locate_table(src, "nat.static[1].public").unwrap()),
            (5, 3)
        );
        assert_eq!(locate_table(src, "nat.static[2].public"), None);
        assert_eq!(locate_table(src, "workers"), None);
    }

    #[test]
    fn key_at_line_uses_the_last_header() {
        let src = "[nat]\nport_range = [1,\n[nat.timeouts]\ntcp_idle == 3\n";
        assert_eq!(key_at_line(src, 2), "nat.port_range");
        assert_eq!(key_at_line(src, 3), "nat.timeouts");
        assert_eq!(key_at_line(src, 4), "nat.timeouts.tcp_idle");
        assert_eq!(key_at_line("= 1", 1), "(top level)");
        assert_eq!(key_at_line("[nat]\n[]", 2), "nat");
        assert_eq!(key_at_line("[]", 1), "(top level)");
    }

    #[test]
    fn diagnostics_print_file_line_column_and_key() {
        let err =
            Located::at("nat.pooling", 6..9, ErrorKind::NoPublicIps).into_error("[nat]\nx=1\n");
        let err = err.with_file(Path::new("a.toml"));
        assert_eq!(err.line(), Some(2));
        assert_eq!(err.column(), Some(1));
        assert!(err
            .to_string()
            .starts_with("a.toml:2:1: `nat.pooling`: no public address"));
    }

    #[test]
    fn not_multiple_of_8_suggests_neighbours() {
        let msg = ErrorKind::NotMultipleOf8 { value: 100 }.to_string();
        assert!(msg.contains("96") && msg.contains("104"), "{msg}");
    }
}
