//! Kubernetes resource quantities (`500Mi`, `1Gi`, `2`, `1.5G`, `100m`, `1e3`), parsed for
//! comparison only (apimachinery `resource.Quantity`).

/// A quantity's value in base units (bytes for storage).
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
pub struct Quantity(f64);

impl Quantity {
    /// Parses `<number><suffix>`: binary suffixes `Ki`..`Ei`, decimal `n u m k M G T P E`, or
    /// an exponent `e<n>`/`E<n>`. `None` when it is not a quantity.
    pub fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (num, suffix) = s.split_at(split);
        let n: f64 = num.parse().ok()?;
        let mult = match suffix {
            "" => 1.0,
            "Ki" => 1024f64,
            "Mi" => 1024f64.powi(2),
            "Gi" => 1024f64.powi(3),
            "Ti" => 1024f64.powi(4),
            "Pi" => 1024f64.powi(5),
            "Ei" => 1024f64.powi(6),
            "n" => 1e-9,
            "u" => 1e-6,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "P" => 1e15,
            "E" => 1e18,
            e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
            _ => return None,
        };
        Some(Quantity(n * mult))
    }

    /// The value in base units.
    pub fn value(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    #[test]
    fn units_compare() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert!(q("1G") < q("1Gi"));
        assert!(q("500m") < q("1"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(Quantity::parse("1Gb").is_none());
    }
}
