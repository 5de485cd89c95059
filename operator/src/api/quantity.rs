//! Kubernetes resource quantities, read exactly as the API server reads them.
//!
//! Source: `k8s.io/apimachinery/pkg/api/resource` (`quantity.go`, `ParseQuantity`). Its grammar:
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedInteger> | "E" <signedInteger>
//! ```
//!
//! Keelson accepts a strict subset, [`QUANTITY_PATTERN`]: no sign but an optional `+` (requests,
//! limits and sizes are never negative), at least one digit, and a decimal exponent of at most two
//! digits. The bound matters: the API server computes `1e-2147483648` with a number of billions of
//! digits (seconds of CPU and gigabytes of memory per request), and wraps exponents beyond 32
//! bits. With at most 64 characters and |exponent| <= 99, every accepted quantity is cheap to
//! parse.
//!
//! [`Amount`] is the value the API server stores: non-negative values round up to a whole
//! nano-unit and are capped at 2^63 - 1 units. Amounts compare exactly, in integers, never in
//! floating point.

use std::fmt;

/// Pattern of a quantity Keelson accepts (see the module docs): e.g. `100m`, `1.5`, `128Mi`,
/// `10Gi`, `1e3`.
pub const QUANTITY_PATTERN: &str =
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][-+]?[0-9]{1,2}))?$";

/// Most characters of a quantity in the CRD.
pub const QUANTITY_MAX_LENGTH: usize = 64;

/// The largest amount the API server keeps, in base units (apimachinery `maxAllowed`).
const MAX_UNITS: u128 = (1 << 63) - 1;
const NANOS_PER_UNIT: u128 = 1_000_000_000;
const MAX_NANOS: u128 = MAX_UNITS * NANOS_PER_UNIT;

/// A quantity's canonical value as the API server stores it, in nano-units (10^-9 of a core, a
/// byte): rounded up to a whole nano-unit and capped at 2^63 - 1 units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount {
    nanos: u128,
}

impl Amount {
    /// An amount of whole units (cores, bytes).
    pub const fn units(n: u64) -> Self {
        Amount {
            nanos: n as u128 * NANOS_PER_UNIT,
        }
    }

    /// 1 Mi (1,048,576 bytes).
    pub const MEBI: Amount = Amount::units(1 << 20);

    /// The value in nano-units.
    pub fn nanos(self) -> u128 {
        self.nanos
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }
}

/// The amount in units with up to nine decimals, e.g. `0.256` or `1048576`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.nanos / NANOS_PER_UNIT, self.nanos % NANOS_PER_UNIT);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let frac = format!("{frac:09}");
            write!(f, "{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// Why a string is not a quantity Keelson accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a quantity at all.
    #[error(
        "is not a Kubernetes quantity: write a number with an optional suffix, such as `100m`, `0.5`, `128Mi`, `10Gi` or `1e3`"
    )]
    Syntax,
    /// A negative quantity.
    #[error("must not be negative")]
    Negative,
    /// A decimal exponent beyond two digits.
    #[error(
        "has an exponent beyond two digits, which is far outside any real amount (and costly for the API server to parse): write it with a suffix such as `Gi` or `m`"
    )]
    Exponent,
    /// Longer than the CRD allows.
    #[error("is longer than {QUANTITY_MAX_LENGTH} characters")]
    TooLong,
}

/// Parse `s` into the amount the API server would store, refusing anything outside
/// [`QUANTITY_PATTERN`].
pub fn parse(s: &str) -> Result<Amount, QuantityError> {
    if s.len() > QUANTITY_MAX_LENGTH {
        return Err(QuantityError::TooLong);
    }
    let body = match s.as_bytes().first() {
        Some(b'-') => {
            // Say "negative" only for what is otherwise a quantity.
            if s[1..].starts_with(['+', '-']) {
                return Err(QuantityError::Syntax);
            }
            return match parse(&s[1..]) {
                Ok(_) => Err(QuantityError::Negative),
                Err(e) => Err(e),
            };
        }
        Some(b'+') => &s[1..],
        _ => s,
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(num_end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(QuantityError::Syntax);
    }
    // digits × 10^shift × 2^binary
    let (mut shift, binary): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => (exponent(&s[1..])?, 0),
        _ => return Err(QuantityError::Syntax),
    };
    let mut digits: Vec<u8> = whole
        .bytes()
        .chain(frac.bytes())
        .map(|c| c - b'0')
        .collect();
    shift -= frac.len() as i32;
    for _ in 0..binary / 10 {
        mul_small(&mut digits, 1024);
    }
    Ok(Amount {
        nanos: scale_round_up(&digits, shift + 9),
    })
}

/// A decimal exponent of one or two digits with an optional sign.
fn exponent(s: &str) -> Result<i32, QuantityError> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.is_empty() || !unsigned.bytes().all(|c| c.is_ascii_digit()) {
        return Err(QuantityError::Syntax);
    }
    if unsigned.len() > 2 {
        return Err(QuantityError::Exponent);
    }
    let n: i32 = unsigned.parse().map_err(|_| QuantityError::Syntax)?;
    Ok(if s.starts_with('-') { -n } else { n })
}

/// `digits` (base 10, most significant first) times `m`, in place.
fn mul_small(digits: &mut Vec<u8>, m: u32) {
    let mut carry = 0u32;
    for d in digits.iter_mut().rev() {
        let v = u32::from(*d) * m + carry;
        *d = (v % 10) as u8;
        carry = v / 10;
    }
    while carry > 0 {
        digits.insert(0, (carry % 10) as u8);
        carry /= 10;
    }
}

/// ceil(digits × 10^shift), capped at [`MAX_NANOS`].
fn scale_round_up(digits: &[u8], shift: i32) -> u128 {
    let first = digits.iter().position(|&d| d != 0).unwrap_or(digits.len());
    let digits = &digits[first..];
    if digits.is_empty() {
        return 0;
    }
    // 10^30 > MAX_NANOS (about 9.2 × 10^27): anything with more digits is capped.
    const CAP_DIGITS: i64 = 30;
    let (head, round_up) = if shift >= 0 {
        if digits.len() as i64 + i64::from(shift) > CAP_DIGITS {
            return MAX_NANOS;
        }
        (digits, false)
    } else {
        let cut = digits.len() as i64 + i64::from(shift);
        if cut <= 0 {
            return 1; // a positive amount below one nano-unit rounds up to one
        }
        let (head, tail) = digits.split_at(cut as usize);
        if head.len() as i64 > CAP_DIGITS {
            return MAX_NANOS;
        }
        (head, tail.iter().any(|&d| d != 0))
    };
    let mut n: u128 = head.iter().fold(0, |n, &d| n * 10 + u128::from(d));
    for _ in 0..shift.max(0) {
        n *= 10;
    }
    (n + u128::from(round_up)).min(MAX_NANOS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> u128 {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).nanos()
    }

    #[test]
    fn suffixes_and_exponents() {
        assert_eq!(nanos("1"), 1_000_000_000);
        assert_eq!(nanos("100m"), 100_000_000);
        assert_eq!(nanos("1.5"), 1_500_000_000);
        assert_eq!(nanos("+2"), 2_000_000_000);
        assert_eq!(nanos(".5"), 500_000_000);
        assert_eq!(nanos("5."), 5_000_000_000);
        assert_eq!(nanos("1n"), 1);
        assert_eq!(nanos("1u"), 1_000);
        assert_eq!(nanos("1k"), 1_000 * 1_000_000_000);
        assert_eq!(nanos("1E"), 10u128.pow(18) * 1_000_000_000);
        assert_eq!(nanos("1Ki"), 1024 * 1_000_000_000);
        assert_eq!(nanos("1.5Gi"), 1_610_612_736 * 1_000_000_000);
        assert_eq!(nanos("128Mi"), 134_217_728 * 1_000_000_000);
        assert_eq!(nanos("1e3"), 1_000 * 1_000_000_000);
        assert_eq!(nanos("1E+3"), 1_000 * 1_000_000_000);
        assert_eq!(nanos("25e-1"), 2_500_000_000);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("000.000"), 0);
    }

    #[test]
    fn rounds_up_to_a_nano_unit_and_caps_like_the_api_server() {
        assert_eq!(nanos("0.1n"), 1);
        assert_eq!(nanos("1e-99"), 1);
        assert_eq!(nanos("1.0000000001"), 1_000_000_001);
        assert_eq!(nanos("0.0000000000"), 0);
        assert_eq!(nanos("1e99"), MAX_NANOS);
        assert_eq!(nanos("9223372036854775807"), MAX_NANOS);
        assert_eq!(nanos("9223372036854775808"), MAX_NANOS);
        assert_eq!(nanos("8Ei"), MAX_NANOS);
        assert_eq!(nanos("7Ei"), 7 * (1u128 << 60) * 1_000_000_000);
        assert_eq!(nanos(&format!("0.{}1", "0".repeat(60))), 1);
    }

    #[test]
    fn compares_exactly_where_f64_cannot() {
        let a = parse("1000000000000000001").unwrap();
        let b = parse("1000000000000000000").unwrap();
        assert!(a > b);
        assert_eq!(1000000000000000001f64, 1000000000000000000f64);
        assert_eq!(parse("1Gi").unwrap(), parse("1073741824").unwrap());
        assert_eq!(parse("1000m").unwrap(), parse("1").unwrap());
        assert!(parse("1.0000000001").unwrap() > parse("1").unwrap());
    }

    #[test]
    fn refuses_what_the_api_server_refuses_or_pays_dearly_for() {
        use QuantityError::*;
        let cases = [
            ("", Syntax),
            (".", Syntax),
            ("+", Syntax),
            ("Ki", Syntax),
            ("1e1.5", Syntax),
            ("1e.5", Syntax),
            ("1e1.", Syntax),
            ("1e", Syntax),
            ("1e+", Syntax),
            ("1ee5", Syntax),
            ("1K", Syntax),
            ("1KiB", Syntax),
            ("1.2.3", Syntax),
            ("1 Gi", Syntax),
            (" 1", Syntax),
            ("0x10", Syntax),
            ("1e5m", Syntax),
            ("-1", Negative),
            ("-1Gi", Negative),
            ("-.5", Negative),
            ("--1", Syntax),
            ("1e-2147483648", Exponent),
            ("1e4294967296", Exponent),
            ("1e100", Exponent),
        ];
        for (s, want) in cases {
            assert_eq!(parse(s), Err(want), "{s:?}");
        }
        assert_eq!(parse(&"1".repeat(65)), Err(TooLong));
    }

    /// The pattern in the CRD and `parse` accept the same strings (signs aside: the pattern has no
    /// `-`, and `parse` names a negative quantity as such).
    #[test]
    fn pattern_agrees_with_parse() {
        let schema = serde_json::json!({"type": "string", "pattern": QUANTITY_PATTERN});
        let v = jsonschema::validator_for(&schema).unwrap();
        let atoms = [
            "", "1", "0", ".", "+", "-", "e", "E", "K", "i", "m", "5", "Mi", "e-", "n",
        ];
        for a in atoms {
            for b in atoms {
                for c in atoms {
                    for d in ["", "1", "9"] {
                        let s = format!("{a}{b}{c}{d}");
                        assert_eq!(
                            v.is_valid(&serde_json::json!(s)),
                            parse(&s).is_ok(),
                            "{s:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn displays_units_with_decimals() {
        assert_eq!(parse("256m").unwrap().to_string(), "0.256");
        assert_eq!(parse("1Mi").unwrap().to_string(), "1048576");
        assert_eq!(parse("1n").unwrap().to_string(), "0.000000001");
    }
}
