//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!key`, `>`, `<`) and field
//! selectors (`=`, `==`, `!=` on dotted paths such as `metadata.name`).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Not => "!".into(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::NotEq => "!=".into(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Comma => ",".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
        }
    }
}

fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let special =
        |c: char| matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<') || c.is_whitespace();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::NotEq);
                i += 2;
            }
            '!' => {
                out.push(Tok::Not);
                i += 1;
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::DoubleEq);
                i += 2;
            }
            '=' => {
                out.push(Tok::Eq);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '>' => {
                out.push(Tok::Gt);
                i += 1;
            }
            '<' => {
                out.push(Tok::Lt);
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !special(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    _ => Tok::Ident(word),
                });
            }
        }
    }
    out
}

fn err_found(t: Option<&Tok>, expected: &str) -> String {
    let found = t.map(Tok::describe).unwrap_or_default();
    format!("unable to parse requirement: found '{found}', expected: {expected}")
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let toks = lex(s);
        let mut reqs = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let mut negate = false;
            if toks[i] == Tok::Not {
                negate = true;
                i += 1;
            }
            let key = match toks.get(i) {
                Some(Tok::Ident(k)) => k.clone(),
                other => return Err(err_found(other, "identifier")),
            };
            i += 1;
            if negate {
                reqs.push(Requirement {
                    key,
                    op: Op::DoesNotExist,
                    values: vec![],
                });
            } else {
                match toks.get(i) {
                    None | Some(Tok::Comma) => reqs.push(Requirement {
                        key,
                        op: Op::Exists,
                        values: vec![],
                    }),
                    Some(op @ (Tok::Eq | Tok::DoubleEq | Tok::NotEq | Tok::Gt | Tok::Lt)) => {
                        let op = match op {
                            Tok::NotEq => Op::NotEq,
                            Tok::Gt => Op::Gt,
                            Tok::Lt => Op::Lt,
                            _ => Op::Eq,
                        };
                        i += 1;
                        let value = match toks.get(i) {
                            Some(Tok::Ident(v)) => {
                                i += 1;
                                v.clone()
                            }
                            None | Some(Tok::Comma) if matches!(op, Op::Eq | Op::NotEq) => {
                                String::new()
                            }
                            other => return Err(err_found(other, "identifier")),
                        };
                        if matches!(op, Op::Gt | Op::Lt) && value.parse::<i64>().is_err() {
                            return Err(format!(
                                "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {value}"
                            ));
                        }
                        reqs.push(Requirement {
                            key,
                            op,
                            values: vec![value],
                        });
                    }
                    Some(t @ (Tok::In | Tok::NotIn)) => {
                        let op = if *t == Tok::In { Op::In } else { Op::NotIn };
                        i += 1;
                        if toks.get(i) != Some(&Tok::Open) {
                            return Err(err_found(toks.get(i), "'('"));
                        }
                        i += 1;
                        let mut values = Vec::new();
                        loop {
                            match toks.get(i) {
                                Some(Tok::Ident(v)) => {
                                    values.push(v.clone());
                                    i += 1;
                                }
                                Some(Tok::Close) => {
                                    i += 1;
                                    break;
                                }
                                Some(Tok::Comma) => i += 1,
                                other => return Err(err_found(other, "',', ')' or identifier")),
                            }
                        }
                        reqs.push(Requirement { key, op, values });
                    }
                    other => {
                        return Err(err_found(other, "'=', '!=', '==', 'in', notin'"));
                    }
                }
            }
            match toks.get(i) {
                None => break,
                Some(Tok::Comma) => i += 1,
                other => return Err(err_found(other, "','")),
            }
        }
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| {
            let v = get(&r.key);
            match r.op {
                Op::Eq => v == Some(r.values[0].as_str()),
                Op::NotEq => v != Some(r.values[0].as_str()),
                Op::In => v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotIn => !v.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
                Op::Gt | Op::Lt => {
                    let (Some(a), Ok(b)) = (
                        v.and_then(|v| v.parse::<i64>().ok()),
                        r.values[0].parse::<i64>(),
                    ) else {
                        return false;
                    };
                    if r.op == Op::Gt { a > b } else { a < b }
                }
            }
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            reqs.push((field.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The `metadata.name` an equality requirement pins, if any (lets lookups skip a scan).
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(f, eq, _)| *eq && f == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, value)| {
            let mut cur = Some(obj);
            for seg in field.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let actual = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_matches_set_based_selectors() {
        let obj = json!({"metadata": {"labels": {"tier": "backend", "app.kubernetes.io/managed-by": "keelson"}}});
        let ok =
            LabelSelector::parse("tier in (backend,frontend),app.kubernetes.io/managed-by!=other")
                .unwrap();
        assert!(ok.matches(&obj));
        assert!(
            !LabelSelector::parse("tier notin (backend)")
                .unwrap()
                .matches(&obj)
        );
        assert!(LabelSelector::parse("!missing,tier").unwrap().matches(&obj));
        assert!(LabelSelector::parse("tier==backend").unwrap().matches(&obj));
    }

    #[test]
    fn rejects_triple_equals_as_recorded() {
        assert_eq!(
            LabelSelector::parse("tier===x").unwrap_err(),
            "unable to parse requirement: found '=', expected: identifier"
        );
    }

    #[test]
    fn field_selector_on_nested_paths() {
        let obj = json!({"metadata": {"name": "web"}, "regarding": {"kind": "Deployment"}});
        assert!(
            FieldSelector::parse("metadata.name=web,regarding.kind=Deployment")
                .unwrap()
                .matches(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=web")
                .unwrap()
                .matches(&obj)
        );
    }
}
