//! Resource quantities exactly as Kubernetes reads them: apimachinery's `ParseQuantity`
//! (`staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go`), ported independently of
//! Keelson's own parser so each checks the other.
//!
//! Grammar: an optional sign, digits with an optional `.` and fraction, then a suffix: a binary
//! one (`Ki` .. `Ei`), a decimal one (`n u m "" k M G T P E`) or `e`/`E` with an integer exponent
//! that fits in 32 bits. The parsed value is rounded away from zero to a whole nano (1e-9) and
//! capped at 2^63-1 base units, which is what `Cmp` compares.

use num_bigint::BigInt;

/// A quantity as the API server reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantity {
    /// The value in nano units (1e-9), rounded and capped as the API server does.
    pub nanos: BigInt,
    /// The power of ten the API server materialises to read the value (mantissa digits plus
    /// exponent): large magnitudes here are what make parsing expensive.
    pub magnitude: i64,
}

const DEC_SUFFIXES: [(&str, i64); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];
const BIN_SUFFIXES: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];

/// Parse `s` as `ParseQuantity` does (after `UnmarshalJSON`'s `TrimSpace`); `None` when the API
/// server answers "quantities must match the regular expression".
pub fn parse(s: &str) -> Option<Quantity> {
    let s = s.trim_matches(|c: char| c.is_whitespace());
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    match b[0] {
        b'-' => {
            negative = true;
            pos += 1
        }
        b'+' => pos += 1,
        _ => {}
    }
    while pos < b.len() && b[pos] == b'0' {
        pos += 1;
    }
    let num_start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[num_start..pos];
    let mut denom = "";
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        let d = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[d..pos];
    }
    let suffix_start = pos;
    while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos != b.len() {
        return None;
    }
    let suffix = &s[suffix_start..];
    let (exp10, pow2) = if let Some((_, e)) = DEC_SUFFIXES.iter().find(|(n, _)| *n == suffix) {
        (*e, 0)
    } else if let Some((_, p)) = BIN_SUFFIXES.iter().find(|(n, _)| *n == suffix) {
        (0, *p)
    } else if suffix.len() > 1 && (suffix.starts_with('e') || suffix.starts_with('E')) {
        // strconv.ParseInt(s[1:], 10, 64), then the int32 range check.
        let e: i64 = suffix[1..].parse().ok()?;
        if e > i32::MAX as i64 || e < i32::MIN as i64 {
            return None;
        }
        (e, 0)
    } else {
        return None;
    };
    let digits = format!("{num}{denom}");
    let digits = digits.trim_start_matches('0');
    let scale = exp10 - denom.len() as i64;
    let magnitude = digits.len() as i64 + scale.abs() + (pow2 as i64 * 3) / 10;
    if digits.is_empty() {
        return Some(Quantity {
            nanos: BigInt::from(0),
            magnitude,
        });
    }
    // value = digits * 10^scale * 2^pow2, in nanos: * 10^9.
    let k = scale + 9;
    let cap = (BigInt::from(1u8) << 63u32) - 1u8;
    let cap_nanos = &cap * BigInt::from(1_000_000_000u64);
    let approx_digits = digits.len() as i64 + k + (pow2 as i64 * 31) / 100;
    let nanos = if approx_digits > 40 {
        cap_nanos.clone()
    } else if approx_digits < -2 {
        // Below one nano: rounded away from zero to one nano.
        BigInt::from(1)
    } else {
        let d: BigInt = digits.parse().expect("digits");
        let d = d << pow2;
        if k >= 0 {
            d * BigInt::from(10u8).pow(k as u32)
        } else {
            let div = BigInt::from(10u8).pow((-k) as u32);
            let q = &d / &div;
            if &q * &div == d { q } else { q + 1 }
        }
    };
    let nanos = nanos.min(cap_nanos);
    Some(Quantity {
        nanos: if negative { -nanos } else { nanos },
        magnitude,
    })
}

/// Bytes in one mebibyte, in nanos.
pub fn mebibyte_nanos() -> BigInt {
    BigInt::from(1u64 << 20) * BigInt::from(1_000_000_000u64)
}

/// A thousand cores, in nanos.
pub fn thousand_cores_nanos() -> BigInt {
    BigInt::from(1000u64) * BigInt::from(1_000_000_000u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> Option<BigInt> {
        parse(s).map(|q| q.nanos)
    }

    #[test]
    fn grammar() {
        for ok in [
            "0",
            "1",
            "100m",
            "1.5",
            ".5",
            "1.",
            "128Mi",
            "1e3",
            "1E-3",
            "+1",
            "-1",
            "1e-2147483648",
            ".",
        ] {
            assert!(parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "1e1.5",
            "1e.5",
            "1e1.",
            "1K",
            "1Ki5",
            "1e",
            "1e2147483648",
            "1 Mi",
            "abc",
            "1.2.3",
            "0x10",
            "1_000",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn values_are_exact() {
        assert_eq!(nanos("100m"), Some(BigInt::from(100_000_000)));
        assert_eq!(nanos("1Ki"), Some(BigInt::from(1_024_000_000_000_u64)));
        assert!(nanos("1000000000000000001") > nanos("1000000000000000000"));
        assert_eq!(nanos("1e-20"), Some(BigInt::from(1)));
        assert_eq!(nanos("-1e-20"), Some(BigInt::from(-1)));
        assert_eq!(nanos("1e100"), nanos("9223372036854775807"));
        assert_eq!(nanos("1e100"), nanos("1e19"));
    }
}
