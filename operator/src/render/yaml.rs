//! `keelson render`'s YAML reader: YAML read the way `kubectl` reads it, within fixed limits.
//!
//! `kubectl` turns YAML into JSON with `sigs.k8s.io/yaml`, whose parser is a fork of go-yaml v2: a
//! YAML 1.1 reader. So an unquoted `on` is the boolean `true` for kubectl (and the API server then
//! refuses it where the CRD wants a string), while a YAML 1.2 reader sees the string `"on"`.
//! This module resolves untagged plain scalars as go-yaml v2's `resolve` does, so `render` sees
//! the same JSON as the cluster:
//!
//! - null: empty, `~`, `null`, `Null`, `NULL`;
//! - booleans: `y Y yes Yes YES true True TRUE on On ON` and `n N no No NO false False FALSE off
//!   Off OFF`;
//! - integers: after removing `_`, Go's `strconv.ParseInt(s, 0, 64)` (then `ParseUint`): decimal,
//!   `0x` hex, `0o` and leading-`0` octal (`010` is 8), `0b` binary;
//! - floats: after removing `_`, `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` within
//!   f64's range (`.inf` and `.nan` are refused: JSON cannot carry them);
//! - everything else, every quoted or block scalar, and anything tagged `!!str`: a string.
//!   (Timestamps such as `2024-01-01` stay strings, as go-yaml v2 keeps them for JSON.)
//!
//! Anchors, aliases and `<<` merge keys work as in go-yaml v2. Mapping keys that are booleans or
//! integers become their JSON text (`on:` is the key `"true"`, as kubectl sends it). Duplicate
//! keys are refused (kubectl would keep the last one silently).
//!
//! Limits, checked while reading, so any input is answered in time linear in its size:
//! [`MAX_INPUT_BYTES`] of input, [`MAX_DEPTH`] levels of nesting, [`MAX_NODES`] values in all
//! (aliases count every value they copy). Beyond them the input is refused with a message that
//! names the limit.

use std::{
    collections::{HashMap, HashSet},
    fmt,
};

use granit_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

/// The largest input read, in bytes (3 MiB, the API server's request size limit).
pub const MAX_INPUT_BYTES: usize = 3 * 1024 * 1024;
/// The deepest nesting of sequences and mappings read (an Application needs about 8).
pub const MAX_DEPTH: usize = 64;
/// The most values (scalars, sequences, mappings) read in all, aliases' copies included.
pub const MAX_NODES: usize = 250_000;

/// Why YAML could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct YamlError {
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// 1-based column of the problem, when known.
    pub column: Option<usize>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l} column {c}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

fn error_at(span: &Span, message: impl Into<String>) -> YamlError {
    YamlError {
        line: Some(span.start.line()),
        column: Some(span.start.col() + 1),
        message: message.into(),
    }
}

/// Read every document of `input` as JSON values, as kubectl would send them. An empty document
/// is `Value::Null`.
pub fn read_documents(input: &str) -> Result<Vec<Value>, YamlError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(YamlError {
            line: None,
            column: None,
            message: format!(
                "the input is {} bytes, over the limit of {MAX_INPUT_BYTES} bytes (3 MiB, the API server's own request limit)",
                input.len()
            ),
        });
    }
    let mut options = granit_parser::Options::default();
    options.emit_comments = false;
    options.flow_nesting_limit = MAX_DEPTH + 1;
    options.block_nesting_limit = MAX_DEPTH + 1;
    let mut reader = Reader::default();
    for event in Parser::new_from_str_with_options(input, options) {
        let (event, span) = event.map_err(|e| YamlError {
            line: Some(e.marker().line()),
            column: Some(e.marker().col() + 1),
            message: nesting_hint(e.info()),
        })?;
        reader.event(event, &span)?;
    }
    Ok(reader.documents)
}

/// The parser's own nesting limit speaks of its internals; say which limit it is.
fn nesting_hint(info: String) -> String {
    if info.contains("nesting") || info.contains("recursion") {
        format!("nesting deeper than {MAX_DEPTH} levels ({info})")
    } else {
        info
    }
}

/// A collection being read.
enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        anchor: usize,
        key: Option<Key>,
        /// Keys written out (not merged in): only these may not repeat.
        explicit: HashSet<String>,
    },
}

/// A mapping key read, waiting for its value.
enum Key {
    Name(String),
    Merge,
}

#[derive(Default)]
struct Reader {
    documents: Vec<Value>,
    stack: Vec<Frame>,
    /// Anchored values and how many values each holds.
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    /// The document read so far, once its root is complete.
    root: Option<Value>,
}

impl Reader {
    fn count(&mut self, n: usize, span: &Span) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(error_at(
                span,
                format!(
                    "more than {MAX_NODES} values (aliases count every value they copy): an Application is far smaller"
                ),
            ));
        }
        Ok(())
    }

    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), YamlError> {
        match event {
            Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart(..) => {
                self.root = None;
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                let doc = self.root.take().unwrap_or(Value::Null);
                self.documents.push(doc);
            }
            Event::Alias(id) => {
                let Some((value, n)) = self.anchors.get(&id).cloned() else {
                    return Err(error_at(
                        span,
                        "an alias refers to an anchor that is still open (a recursive alias)",
                    ));
                };
                self.count(n, span)?;
                self.value(value, 0, n, span)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, span)?;
                let awaiting_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if awaiting_key && style == ScalarStyle::Plain && tag.is_none() && text == "<<" {
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(Key::Merge);
                    }
                    return Ok(());
                }
                let value = scalar(&text, style, tag.as_deref(), span)?;
                self.value(value, anchor, 1, span)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(_, anchor, _) => {
                self.open(span)?;
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    anchor,
                    key: None,
                    explicit: HashSet::new(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor }) => (Value::Array(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return Err(error_at(span, "a collection ends that never started")),
                };
                let n = if anchor == 0 { 0 } else { size(&value) };
                self.value(value, anchor, n, span)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn open(&mut self, span: &Span) -> Result<(), YamlError> {
        self.count(1, span)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(error_at(
                span,
                format!("nesting deeper than {MAX_DEPTH} levels: an Application is far shallower"),
            ));
        }
        if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
            return Err(error_at(
                span,
                "a mapping key is a list or a mapping: keys must be plain text",
            ));
        }
        Ok(())
    }

    /// A complete value: into its parent, or the document's root. `n` is its size, for anchors.
    fn value(&mut self, v: Value, anchor: usize, n: usize, span: &Span) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (v.clone(), n.max(1)));
        }
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map {
                map, key, explicit, ..
            }) => match key.take() {
                None => *key = Some(Key::Name(key_text(v, span)?)),
                Some(Key::Name(k)) => {
                    if !explicit.insert(k.clone()) {
                        return Err(error_at(
                            span,
                            format!(
                                "key `{k}` appears twice in one mapping: keep one (kubectl would silently keep the last)"
                            ),
                        ));
                    }
                    map.insert(k, v);
                }
                Some(Key::Merge) => merge(map, v, span)?,
            },
        }
        Ok(())
    }
}

/// How many values `v` holds, itself included.
fn size(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(size).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(size).sum::<usize>(),
        _ => 1,
    }
}

/// A `<<` merge: a mapping's entries, or each mapping's of a list with the earlier ones winning,
/// set into `map` (go-yaml v2 `merge`).
fn merge(map: &mut Map<String, Value>, v: Value, span: &Span) -> Result<(), YamlError> {
    let not_a_map = || error_at(span, "`<<` merges a mapping or a list of mappings");
    match v {
        Value::Object(m) => map.extend(m),
        Value::Array(items) => {
            for item in items.into_iter().rev() {
                match item {
                    Value::Object(m) => map.extend(m),
                    _ => return Err(not_a_map()),
                }
            }
        }
        _ => return Err(not_a_map()),
    }
    Ok(())
}

/// A mapping key as kubectl sends it: text, or a boolean's or integer's JSON text.
fn key_text(v: Value, span: &Span) -> Result<String, YamlError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) if !n.is_f64() => Ok(n.to_string()),
        other => Err(error_at(
            span,
            format!("the mapping key {other} is not text: quote it"),
        )),
    }
}

fn core_tag(tag: Option<&Tag>) -> Result<Option<&str>, ()> {
    match tag {
        None => Ok(None),
        Some(t) if t.handle() == "!" && t.suffix().is_empty() => Ok(Some("str")),
        Some(t) if t.handle() == "tag:yaml.org,2002:" => Ok(Some(t.suffix())),
        Some(_) => Err(()),
    }
}

/// A scalar as go-yaml v2 resolves it for an untyped target.
fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    span: &Span,
) -> Result<Value, YamlError> {
    let tag = core_tag(tag).map_err(|()| {
        error_at(
            span,
            "a custom tag (`!name`) on a value: kubectl cannot read it; remove the tag",
        )
    })?;
    let plain = style == ScalarStyle::Plain;
    match tag {
        Some("str") => return Ok(Value::String(text.into())),
        None if !plain => return Ok(Value::String(text.into())),
        None => {}
        Some(t @ ("int" | "float" | "bool" | "null")) => {
            let v = resolve(text, span)?;
            let fits = match (t, &v) {
                ("int", Value::Number(n)) => !n.is_f64(),
                ("float", Value::Number(_)) => true,
                ("bool", Value::Bool(_)) | ("null", Value::Null) => true,
                _ => false,
            };
            if !fits {
                return Err(error_at(
                    span,
                    format!("`{text}` is tagged !!{t} but is not one"),
                ));
            }
            return Ok(match (t, v) {
                ("float", Value::Number(n)) => float(n.as_f64().unwrap_or_default(), text, span)?,
                (_, v) => v,
            });
        }
        Some(t) => {
            return Err(error_at(
                span,
                format!("the tag !!{t} is not supported here: remove it"),
            ));
        }
    }
    resolve(text, span)
}

/// go-yaml v2 `resolve` of an untagged plain scalar.
fn resolve(text: &str, span: &Span) -> Result<Value, YamlError> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Value::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Value::Bool(false));
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            return Err(error_at(
                span,
                format!(
                    "`{text}` is an infinite or not-a-number float, which JSON (and so kubectl) cannot carry: quote it"
                ),
            ));
        }
        _ => {}
    }
    match text.as_bytes().first() {
        Some(b'0'..=b'9' | b'+' | b'-') => {}
        Some(b'.') => {
            // go-yaml parses these with the underscores kept, which Go's float parser refuses.
            return Ok(match yaml_float(text) {
                Some(f) if !text.contains('_') => float(f, text, span)?,
                _ => Value::String(text.into()),
            });
        }
        _ => return Ok(Value::String(text.into())),
    }
    let plain = text.replace('_', "");
    if let Some(n) = go_parse_int(&plain) {
        return Ok(Value::Number(n));
    }
    if let Some(f) = yaml_float(&plain) {
        return float(f, text, span);
    }
    Ok(Value::String(text.into()))
}

fn float(f: f64, text: &str, span: &Span) -> Result<Value, YamlError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| error_at(span, format!("`{text}` is not a finite number: quote it")))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint(s, 0, 64)`, then go-yaml's `0b` fallback.
fn go_parse_int(s: &str) -> Option<Number> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = match unsigned.as_bytes() {
        [b'0', b'x' | b'X', ..] => (16, &unsigned[2..]),
        [b'0', b'o' | b'O', ..] => (8, &unsigned[2..]),
        [b'0', b'b' | b'B', ..] => (2, &unsigned[2..]),
        [b'0', _, ..] => (8, &unsigned[1..]),
        _ => (10, unsigned),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        if magnitude <= 1u128 << 63 {
            return Some(Number::from((magnitude as i128).wrapping_neg() as i64));
        }
        None
    } else if magnitude <= u128::from(u64::MAX) {
        Some(Number::from(magnitude as u64))
    } else {
        None
    }
}

/// go-yaml v2's `yamlStyleFloat` with Go's `ParseFloat`: `None` outside its grammar or f64's
/// range (go-yaml then keeps the text as a string).
fn yaml_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
    } else {
        if digits(&mut i) == 0 {
            return None;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    f.is_finite().then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(input: &str) -> Value {
        let docs = read_documents(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.into_iter().next().unwrap()
    }

    fn scalar_of(text: &str) -> Value {
        one(&format!("v: {text}\n"))["v"].clone()
    }

    #[test]
    fn yaml_1_1_booleans_and_nulls() {
        for t in [
            "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(scalar_of(t), json!(true), "{t}");
        }
        for t in [
            "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
        ] {
            assert_eq!(scalar_of(t), json!(false), "{t}");
        }
        for t in ["yEs", "oN", "nO", "tRUE", "Y2", "onn"] {
            assert_eq!(scalar_of(t), json!(t), "{t}");
        }
        for t in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(scalar_of(t), Value::Null, "{t:?}");
        }
        assert_eq!(scalar_of("nULL"), json!("nULL"));
        for t in ["'on'", "\"yes\"", "!!str on"] {
            assert_eq!(
                scalar_of(t),
                json!(t.trim_start_matches("!!str ").trim_matches(['\'', '"']))
            );
        }
    }

    #[test]
    fn yaml_1_1_numbers() {
        let cases = [
            ("010", json!(8)),
            ("0o10", json!(8)),
            ("0x1F", json!(31)),
            ("0b101", json!(5)),
            ("1_000", json!(1000)),
            ("-12", json!(-12)),
            ("+12", json!(12)),
            ("08", json!(8.0)),
            ("1.5", json!(1.5)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("1e3", json!(1000.0)),
            ("18446744073709551615", json!(18446744073709551615u64)),
            ("-9223372036854775808", json!(i64::MIN)),
            ("99999999999999999999", json!(1e20)),
        ];
        for (t, want) in cases {
            assert_eq!(scalar_of(t), want, "{t}");
        }
        for t in [
            "1e400",
            "1.2.3",
            "0x",
            "12abc",
            "+",
            "._5",
            "2024-01-01",
            "1:30",
            "0xZ",
        ] {
            assert_eq!(scalar_of(t), json!(t), "{t}");
        }
        assert!(read_documents("v: .inf\n").is_err());
    }

    #[test]
    fn anchors_merges_and_keys() {
        let v = one("base: &b {a: 1, b: 2}\nuse:\n  <<: *b\n  b: 3\nlist: [*b, *b]\non: x\n1: z\n");
        assert_eq!(v["use"], json!({"a": 1, "b": 3}));
        assert_eq!(v["list"], json!([{"a": 1, "b": 2}, {"a": 1, "b": 2}]));
        assert_eq!(v["true"], json!("x"));
        assert_eq!(v["1"], json!("z"));
        let e = read_documents("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        assert!(read_documents("a: !custom x\n").is_err());
    }

    #[test]
    fn documents_and_empty_ones() {
        let docs = read_documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), Value::Null, json!({"b": 2})]);
        assert_eq!(read_documents("").unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn limits_are_refused_early_with_their_name() {
        let deep = format!("{}{}", "[".repeat(40_000), "]".repeat(40_000));
        let e = read_documents(&deep).unwrap_err();
        assert!(e.message.contains("nesting deeper than 64"), "{e}");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(read_documents(&ok).is_ok());
        let mut block = String::new();
        for i in 0..70 {
            block.push_str(&format!("{}k:\n", " ".repeat(i)));
        }
        assert!(
            read_documents(&block)
                .unwrap_err()
                .message
                .contains("nesting")
        );
        // A billion laughs: each level doubles the copies.
        let mut bomb = String::from("a0: &a0 [x, x]\n");
        for i in 1..30 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        let e = read_documents(&bomb).unwrap_err();
        assert!(e.message.contains("more than 250000 values"), "{e}");
        let big = "x".repeat(MAX_INPUT_BYTES + 1);
        assert!(read_documents(&big).unwrap_err().message.contains("3 MiB"));
    }
}
