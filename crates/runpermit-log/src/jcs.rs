//! Canonical JSON for flat objects, as RFC 8785 (JSON Canonicalization Scheme) writes them,
//! and a strict reader for the same shape.
//!
//! Written here rather than through `serde_json` so that the bytes of a log entry can never
//! change with a dependency's formatting (serde_json has changed how it prints floats), and
//! so that floats are read with Rust's correctly rounded parser.
//!
//! - Objects: members sorted by key (all keys here are ASCII, so by bytes, as RFC 8785's
//!   UTF-16 order gives), no whitespace.
//! - Strings: UTF-8 as is, except `"` → `\"`, `\` → `\\`, and control characters below
//!   U+0020 → `\b \t \n \f \r` or `\u00xx` (lowercase hex).
//! - Numbers: ECMAScript `Number.prototype.toString` of the 64-bit float (RFC 8785 §3.2.2.3):
//!   integers below 10^21 in plain digits (`1767225600`, `100`), otherwise the shortest
//!   round-trip digits, in exponent form outside 1e-6..1e21 (`3.8e+25`, `1e-7`, `0.5`).
//! - `null` for an absent optional value.

/// One member value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Null,
}

/// The canonical encoding of an object with these members (sorted here).
pub(crate) fn write_object(members: &mut [(&str, Value<'_>)]) -> Vec<u8> {
    members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(&mut out, key);
        out.push(b':');
        match value {
            Value::Str(s) => write_string(&mut out, s),
            Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Value::Float(x) => out.extend_from_slice(format_number(*x).as_bytes()),
            Value::Null => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
    out
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// ECMAScript `Number::toString(x)` for a finite `x` (ECMA-262 §6.1.6.1.20), as RFC 8785
/// requires: the fewest significant digits that read back as `x`, closest to `x`, ties to
/// an even last digit, then laid out by the size of the exponent.
pub(crate) fn format_number(x: f64) -> String {
    debug_assert!(x.is_finite());
    if x == 0.0 {
        return "0".to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let (digits, n) = shortest_digits(x.abs());
    let k = digits.len() as i32;
    // x = 0.d1d2…dk × 10^n
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{e_sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{e_sign}{}", e.abs())
        }
    };
    format!("{sign}{body}")
}

/// The shortest round-trip digits of a positive finite `x` and `n` with
/// `x ≈ 0.digits × 10^n`.
///
/// Rust's `{:e}` gives the shortest digits and the closest such, but rounds an exact tie
/// up; ECMAScript (and so RFC 8785) takes the even one. A tie is detected on the exact
/// decimal expansion (`{:.800e}` is exact: a double has at most 767 significant digits).
fn shortest_digits(x: f64) -> (String, i32) {
    let split = |sci: &str| -> (String, i32) {
        let (mantissa, exponent) = sci.split_once('e').expect("{:e} writes an exponent");
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let n = exponent
            .parse::<i32>()
            .expect("{:e} writes an integer exponent")
            + 1;
        (digits, n)
    };
    let (digits, n) = split(&format!("{x:e}"));
    let k = digits.len();
    // A tie needs the candidate one unit lower in the last digit to read back as `x` too
    // (cheap to test); only then is the exact expansion worth computing.
    let mut low = digits.clone().into_bytes();
    if low[k - 1] == b'0' {
        return (digits, n);
    }
    low[k - 1] -= 1;
    let low = String::from_utf8(low).expect("ASCII digits");
    if format!("0.{low}e{n}").parse::<f64>() != Ok(x) {
        return (digits, n);
    }
    let (exact, exact_n) = split(&format!("{x:.800e}"));
    let tie = exact_n == n
        && exact.starts_with(&low)
        && exact.as_bytes()[k] == b'5'
        && exact.as_bytes()[k + 1..].iter().all(|&b| b == b'0');
    let low_is_even = (low.as_bytes()[k - 1] - b'0').is_multiple_of(2);
    if tie && low_is_even {
        // (`low` cannot end in 0: a shorter form would then read back, and `{:e}` is shortest.)
        return (low.trim_end_matches('0').to_owned(), n);
    }
    (digits, n)
}

/// A member value as read: strings unescaped, numbers kept as their text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Num(String),
    Bool(bool),
    Null,
}

/// A parse failure: byte offset and what was expected.
pub(crate) type ParseError = (usize, String);

/// Reads one JSON object whose member values are strings, numbers, booleans or null
/// (RFC 8259 grammar, whitespace allowed), refusing duplicate keys, nested values and
/// trailing bytes. Returns the members in document order.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Vec<(String, Scalar)>, ParseError> {
    let mut p = Parser { bytes, pos: 0 };
    p.ws();
    p.expect(b'{')?;
    let mut members: Vec<(String, Scalar)> = Vec::new();
    p.ws();
    if p.peek() == Some(b'}') {
        p.pos += 1;
    } else {
        loop {
            p.ws();
            let at = p.pos;
            let key = p.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                return Err((at, format!("duplicate key {key:?}")));
            }
            p.ws();
            p.expect(b':')?;
            p.ws();
            let value = p.value()?;
            members.push((key, value));
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err((p.pos.saturating_sub(1), "expected ',' or '}'".into())),
            }
        }
    }
    p.ws();
    if p.pos != bytes.len() {
        return Err((p.pos, "unexpected bytes after the object".into()));
    }
    Ok(members)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), ParseError> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            Err((self.pos, format!("expected '{}'", want as char)))
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Scalar, ParseError> {
        match self.peek() {
            Some(b'"') => self.string().map(Scalar::Str),
            Some(b'-' | b'0'..=b'9') => self.number().map(Scalar::Num),
            Some(b'{' | b'[') => {
                Err((self.pos, "nested objects and arrays are not allowed".into()))
            }
            _ if self.literal(b"null") => Ok(Scalar::Null),
            _ if self.literal(b"true") => Ok(Scalar::Bool(true)),
            _ if self.literal(b"false") => Ok(Scalar::Bool(false)),
            _ => Err((self.pos, "expected a value".into())),
        }
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos > from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err((self.pos, "expected a digit".into())),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err((self.pos, "expected a digit after '.'".into()));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err((self.pos, "expected a digit in the exponent".into()));
            }
        }
        Ok(String::from_utf8(self.bytes[start..self.pos].to_vec()).expect("ASCII"))
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.next() {
                None => return Err((at, "unterminated string".into())),
                Some(b'"') => return Ok(out),
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape(at)?,
                        _ => return Err((at, "invalid escape".into())),
                    };
                    out.push(c);
                }
                Some(b) if b < 0x20 => {
                    return Err((at, "unescaped control character in a string".into()));
                }
                Some(b) if b < 0x80 => out.push(b as char),
                Some(_) => {
                    // A multi-byte UTF-8 sequence: find its end and validate it.
                    let len = self.bytes[at..]
                        .iter()
                        .skip(1)
                        .take_while(|b| (0x80..0xc0).contains(*b))
                        .count()
                        + 1;
                    let s = std::str::from_utf8(&self.bytes[at..at + len])
                        .map_err(|_| (at, "invalid UTF-8".to_owned()))?;
                    out.push_str(s);
                    self.pos = at + len;
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let text = self.bytes.get(self.pos..self.pos + 4)?;
        let text = std::str::from_utf8(text).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(text, 16).ok()
    }

    fn unicode_escape(&mut self, at: usize) -> Result<char, ParseError> {
        let bad = || (at, "invalid \\u escape".to_owned());
        let first = self.hex4().ok_or_else(bad)?;
        let code = if (0xd800..0xdc00).contains(&first) {
            if !self.literal(b"\\u") {
                return Err((at, "unpaired surrogate in \\u escape".into()));
            }
            let second = self.hex4().ok_or_else(bad)?;
            if !(0xdc00..0xe000).contains(&second) {
                return Err((at, "unpaired surrogate in \\u escape".into()));
            }
            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| (at, "unpaired surrogate in \\u escape".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_ecmascript_does() {
        // Expected strings are what V8 (Node 20, `String(x)`) prints for the same bits; the
        // first block is RFC 8785 Appendix B's sample table. (During development the output
        // was also compared with V8's on 200,000 random doubles, 311 of them ties.)
        for (bits, text) in [
            (0x0000000000000000u64, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
            // Exact ties between two shortest candidates go to the even digit (Rust's
            // `{:e}` rounds these up: 9.732747997575663e14, 2.7417184703998013e14).
            (0x430ba98195aac7f2, "973274799757566.2"),
            (0x42ef2b73719b7d84, "274171847039980.12"),
            (0x4350000000000001, "18014398509481988"),
        ] {
            assert_eq!(format_number(f64::from_bits(bits)), text, "{bits:#x}");
        }
        for (x, text) in [
            (3.8e25, "3.8e+25"),
            (1e25, "1e+25"),
            (1e26, "1e+26"),
            (6e23, "6e+23"),
            (2.5e24, "2.5e+24"),
            (100.0, "100"),
            (0.5, "0.5"),
            (1e-7, "1e-7"),
            (1.5e20, "150000000000000000000"),
            (123456.789, "123456.789"),
        ] {
            assert_eq!(format_number(x), text, "{x}");
            assert_eq!(text.parse::<f64>().unwrap(), x);
        }
    }

    #[test]
    fn objects_are_sorted_and_escaped() {
        let out = write_object(&mut [
            ("z", Value::Int(-3)),
            ("a", Value::Str("q\"b\\s/\u{1}\n\u{7f}é€😀")),
            ("m", Value::Null),
            ("b_c", Value::Float(1e25)),
            ("b", Value::Float(0.25)),
        ]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":\"q\\\"b\\\\s/\\u0001\\n\u{7f}é€😀\",\"b\":0.25,\"b_c\":1e+25,\"m\":null,\"z\":-3}"
        );
    }

    #[test]
    fn parser_reads_what_the_writer_writes() {
        let text = "{\"a\":\"q\\\"b\\\\s/\\u0001\\n\u{7f}é€😀\",\"b\":0.25,\"m\":null,\"t\":true,\"z\":-3}";
        let members = parse_object(text.as_bytes()).unwrap();
        assert_eq!(
            members,
            vec![
                ("a".into(), Scalar::Str("q\"b\\s/\u{1}\n\u{7f}é€😀".into())),
                ("b".into(), Scalar::Num("0.25".into())),
                ("m".into(), Scalar::Null),
                ("t".into(), Scalar::Bool(true)),
                ("z".into(), Scalar::Num("-3".into())),
            ]
        );
        // Escapes the writer never uses still read correctly (the canonical check refuses them).
        let members = parse_object(br#" { "k" : "\/\u00e9\ud83d\ude00" } "#).unwrap();
        assert_eq!(members, vec![("k".into(), Scalar::Str("/é😀".into()))]);
        assert_eq!(parse_object(b"{}").unwrap(), vec![]);
    }

    #[test]
    fn parser_refuses_what_json_refuses() {
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{\"a\":1}x",
            b"{\"a\":1,\"a\":2}",
            b"{\"a\":{}}",
            b"{\"a\":[1]}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":.5}",
            b"{\"a\":+1}",
            b"{\"a\":1e}",
            b"{\"a\":-}",
            b"{\"a\":NaN}",
            b"{\"a\":Infinity}",
            b"{\"a\":nul}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\x\"}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\\udc00\"}",
            b"{\"a\":\"\\u12\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":\"\xc3\"}",
            b"{\"a\":\"abc",
            b"{a:1}",
        ] {
            assert!(
                parse_object(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
