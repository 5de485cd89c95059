//! Kubernetes' own rules for the fields Keelson fills from the spec, written once.
//!
//! Each function states the rule of one Kubernetes (or Gateway API) definition and names its
//! source. They return `Err(reason)` with a short reason in words ("must contain at least one
//! letter"); the caller names the user's field and the fix. Where the CRD can carry the same rule
//! as an OpenAPI `pattern`, the pattern sits beside the function and a test checks that both
//! agree on a corpus of adversarial strings.
//!
//! Sources (Kubernetes 1.32 to 1.37, Gateway API v1.x standard channel):
//! - `k8s.io/apimachinery/pkg/util/validation/validation.go`: DNS names, qualified names, label
//!   values, port names, env var names, ConfigMap keys.
//! - `k8s.io/apimachinery/pkg/api/validation/objectmeta.go`: annotation keys and total size.
//! - `k8s.io/kubernetes/pkg/apis/networking/validation/validation.go`: Ingress hosts and paths.
//! - `k8s.io/kubernetes/pkg/apis/core/validation/validation.go`: container images.
//! - `gateway.networking.k8s.io_httproutes.yaml`: HTTPRoute paths, hostnames, parentRefs, limits.

/// Most characters in a DNS-1123 or DNS-1035 label (Kubernetes `DNS1123LabelMaxLength`).
pub const DNS_LABEL_MAX: usize = 63;
/// Most characters in a DNS-1123 subdomain (Kubernetes `DNS1123SubdomainMaxLength`).
pub const DNS_SUBDOMAIN_MAX: usize = 253;
/// Most characters in a port name (Kubernetes `IsValidPortName`).
pub const PORT_NAME_MAX: usize = 15;
/// Most bytes of all annotations of one object, keys plus values (Kubernetes
/// `TotalAnnotationSizeLimitB`).
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;
/// Most rules in one HTTPRoute (Gateway API `spec.rules` maxItems).
pub const HTTPROUTE_MAX_RULES: usize = 16;
/// Most matches in one HTTPRoute rule (Gateway API `spec.rules[].matches` maxItems).
pub const HTTPROUTE_MAX_MATCHES_PER_RULE: usize = 64;
/// Most parentRefs of one HTTPRoute (Gateway API `spec.parentRefs` maxItems).
pub const HTTPROUTE_MAX_PARENT_REFS: usize = 32;
/// Most hostnames of one HTTPRoute (Gateway API `spec.hostnames` maxItems).
pub const HTTPROUTE_MAX_HOSTNAMES: usize = 16;

/// Pattern of a DNS-1123 label (Kubernetes `dns1123LabelFmt`); length is checked apart.
pub const DNS_1123_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Pattern of a DNS-1123 subdomain (Kubernetes `dns1123SubdomainFmt`); length is checked apart.
pub const DNS_1123_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Pattern of a DNS-1035 label (Kubernetes `dns1035LabelFmt`); length is checked apart.
pub const DNS_1035_LABEL_PATTERN: &str = r"^[a-z]([-a-z0-9]*[a-z0-9])?$";
/// Pattern of an IANA service name as Kubernetes `IsValidPortName` accepts it: lowercase
/// letters, digits and single `-` between them, at least one letter; length is checked apart.
pub const PORT_NAME_PATTERN: &str = r"^([0-9]+-)*[0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$";
/// Pattern of an env var name as Kubernetes `IsEnvVarName` accepts it (`[-._a-zA-Z][-._a-zA-Z0-9]*`,
/// and not `.`, `..` or starting with `..`).
pub const ENV_VAR_NAME_PATTERN: &str = r"^([-_a-zA-Z]|\.[-_a-zA-Z0-9])[-._a-zA-Z0-9]*$";
/// Pattern of a ConfigMap or Secret key as Kubernetes `IsConfigMapKey` accepts it
/// (`[-._a-zA-Z0-9]+`, and not `.`, `..` or starting with `..`); length is checked apart.
pub const CONFIG_MAP_KEY_PATTERN: &str = r"^([-_a-zA-Z0-9]|\.[-_a-zA-Z0-9])[-._a-zA-Z0-9]*$";
/// Pattern of a host name as an Ingress rule and an HTTPRoute hostname both accept it: a DNS-1123
/// subdomain, optionally with a leading `*.` (Kubernetes `IsWildcardDNS1123Subdomain`, Gateway
/// API `Hostname`).
pub const HOST_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Pattern of the characters of an HTTPRoute `Exact`/`PathPrefix` path (Gateway API
/// `HTTPPathMatch`), anchored to start with `/`.
pub const HTTP_PATH_PATTERN: &str = r"^/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$";
/// Pattern of a Prometheus duration as the ServiceMonitor CRD accepts it for `interval`
/// (prometheus-operator `monitoringv1.Duration`).
pub const DURATION_PATTERN: &str =
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$";

/// The result of a rule: `Err` holds why the value fails, in words.
pub type Rule = Result<(), String>;

fn fail(reason: impl Into<String>) -> Rule {
    Err(reason.into())
}

fn max_len(s: &str, max: usize) -> Rule {
    if s.len() > max {
        fail(format!("must be no more than {max} characters"))
    } else {
        Ok(())
    }
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Whether `s` has the shape `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ignoring length.
fn label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum_lower(c) || c == b'-')
}

/// Kubernetes `IsDNS1123Label`: at most 63 characters, lowercase letters, digits and `-`,
/// starting and ending with a letter or digit. Names Services' ports, namespaces, containers.
pub fn dns1123_label(s: &str) -> Rule {
    max_len(s, DNS_LABEL_MAX)?;
    if !label_shape(s) {
        return fail(
            "must consist of lowercase letters, digits and `-`, and start and end with a letter or digit",
        );
    }
    Ok(())
}

/// Kubernetes `IsDNS1123Subdomain`: at most 253 characters, DNS-1123 labels joined by `.`
/// (each label's length is not limited on its own). Names Secrets, ConfigMaps,
/// ServiceAccounts, StorageClasses, IngressClasses.
pub fn dns1123_subdomain(s: &str) -> Rule {
    max_len(s, DNS_SUBDOMAIN_MAX)?;
    if s.is_empty() || !s.split('.').all(label_shape) {
        return fail(
            "must consist of lowercase letters, digits, `-` and `.`, and start and end with a letter or digit (a DNS-1123 subdomain)",
        );
    }
    Ok(())
}

/// Kubernetes `IsDNS1035Label`: a DNS-1123 label that starts with a letter. Names Services.
pub fn dns1035_label(s: &str) -> Rule {
    max_len(s, DNS_LABEL_MAX)?;
    if !label_shape(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        return fail(
            "must consist of lowercase letters, digits and `-`, start with a letter and end with a letter or digit",
        );
    }
    Ok(())
}

/// Kubernetes `IsValidPortName` (an IANA service name, RFC 6335): 1 to 15 characters, lowercase
/// letters, digits and `-`, at least one letter, no `--`, not starting or ending with `-`.
/// Container port names, named target ports and probe ports all follow it.
pub fn port_name(s: &str) -> Rule {
    if s.is_empty() {
        return fail("must not be empty");
    }
    max_len(s, PORT_NAME_MAX)?;
    if !s.bytes().all(|c| is_alnum_lower(c) || c == b'-') {
        return fail("must contain only lowercase letters, digits and `-`");
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        return fail("must contain at least one letter (a-z)");
    }
    if s.contains("--") {
        return fail("must not contain two `-` in a row");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return fail("must not begin or end with `-`");
    }
    Ok(())
}

fn qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| alnum(c) || c == b'-' || c == b'_' || c == b'.')
}

/// Kubernetes `IsQualifiedName`: an optional DNS-1123 subdomain prefix and `/`, then a name of at
/// most 63 characters of letters, digits, `-`, `_` and `.`, starting and ending with a letter or
/// digit. Label keys and (lowercased) annotation keys follow it.
pub fn qualified_name(s: &str) -> Rule {
    let name = match s.split_once('/') {
        None => s,
        Some((prefix, name)) => {
            if name.contains('/') {
                return fail("may contain at most one `/`");
            }
            if prefix.is_empty() {
                return fail("has an empty prefix before `/`");
            }
            dns1123_subdomain(prefix).map_err(|r| format!("prefix before `/` {r}"))?;
            name
        }
    };
    if name.is_empty() {
        return fail("has an empty name");
    }
    if name.len() > DNS_LABEL_MAX {
        return fail(format!(
            "has a name part (after any `/`) longer than {DNS_LABEL_MAX} characters"
        ));
    }
    if !qualified_name_part(name) {
        return fail(
            "must have a name part of letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
        );
    }
    Ok(())
}

/// Kubernetes `IsValidLabelValue`: empty, or at most 63 characters of letters, digits, `-`, `_`
/// and `.`, starting and ending with a letter or digit.
pub fn label_value(s: &str) -> Rule {
    max_len(s, DNS_LABEL_MAX)?;
    if !s.is_empty() && !qualified_name_part(s) {
        return fail(
            "must be empty or consist of letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
        );
    }
    Ok(())
}

/// Kubernetes `ValidateAnnotations` for one key: `IsQualifiedName` of the key in lower case.
pub fn annotation_key(s: &str) -> Rule {
    qualified_name(&s.to_ascii_lowercase())
}

/// Kubernetes `ValidateAnnotationsSize`: the bytes of every key and value together, at most
/// [`ANNOTATIONS_MAX_BYTES`] (256 KiB).
pub fn annotations_size<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Rule {
    let total: usize = pairs.into_iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > ANNOTATIONS_MAX_BYTES {
        return fail(format!(
            "are {total} bytes in total, over Kubernetes' limit of {ANNOTATIONS_MAX_BYTES} bytes (256 KiB) for one object"
        ));
    }
    Ok(())
}

/// Kubernetes `hasChDirPrefix`: not `.`, not `..`, not starting with `..`.
fn no_chdir_prefix(s: &str) -> Rule {
    if s == "." || s.starts_with("..") {
        return fail("must not be `.` or start with `..`");
    }
    Ok(())
}

/// Kubernetes `IsEnvVarName`: letters, digits, `-`, `_` and `.`, not starting with a digit, not
/// `.` and not starting with `..`. (Kubernetes 1.34 and later accept more; this is the rule every
/// supported version accepts.)
pub fn env_var_name(s: &str) -> Rule {
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
    if b.is_empty() || b[0].is_ascii_digit() || !b.iter().all(|&c| ok(c)) {
        return fail(
            "must consist of letters, digits, `-`, `_` and `.`, and must not start with a digit",
        );
    }
    no_chdir_prefix(s)
}

/// Kubernetes `IsConfigMapKey` (also the rule for Secret keys): at most 253 characters of
/// letters, digits, `-`, `_` and `.`, not `.` and not starting with `..`.
pub fn config_map_key(s: &str) -> Rule {
    max_len(s, DNS_SUBDOMAIN_MAX)?;
    let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.';
    if s.is_empty() || !s.bytes().all(ok) {
        return fail("must consist of letters, digits, `-`, `_` and `.`");
    }
    no_chdir_prefix(s)
}

/// Whether `s` is an IPv4 address as Kubernetes' `netutils.ParseIPSloppy` reads it (four
/// dot-separated decimal numbers up to 255, leading zeros allowed).
pub fn is_ipv4_sloppy(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|c| c.is_ascii_digit())
                && p.trim_start_matches('0').len() <= 3
                && p.parse::<u32>().is_ok_and(|n| n <= 255)
        })
}

/// A host as both an Ingress rule (Kubernetes `validateIngressRules`: a DNS-1123 subdomain or
/// `IsWildcardDNS1123Subdomain`, never an IP address) and an HTTPRoute hostname (Gateway API
/// `Hostname` pattern, at most 253 characters) accept it.
pub fn host(s: &str) -> Rule {
    if is_ipv4_sloppy(s) {
        return fail("must be a DNS name, not an IP address");
    }
    let name = s.strip_prefix("*.").unwrap_or(s);
    max_len(s, DNS_SUBDOMAIN_MAX)?;
    dns1123_subdomain(name).map_err(|_| {
        "must be a DNS name of lowercase letters, digits, `-` and `.`, optionally starting with `*.`"
            .to_string()
    })
}

/// The sequences an Ingress `Prefix`/`Exact` path (Kubernetes `invalidPathSequences`) and an
/// HTTPRoute `PathPrefix`/`Exact` path refuse.
pub const INVALID_PATH_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
/// The endings an Ingress `Prefix`/`Exact` path (Kubernetes `invalidPathSuffixes`) and an
/// HTTPRoute path refuse.
pub const INVALID_PATH_SUFFIXES: [&str; 2] = ["/..", "/."];

fn path_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-/._~!$&'()*+,;=:@".contains(&c)
}

/// A route path as both an Ingress `Prefix` path (Kubernetes `validateHTTPIngressPath`: absolute,
/// no `//`, `/./`, `/../`, `%2f`, `%2F`, no trailing `/.` or `/..`) and an HTTPRoute `PathPrefix`
/// value (Gateway API `HTTPPathMatch`: the same, plus no `#` and only the characters
/// `[-A-Za-z0-9/._~!$&'()*+,;=:@]` or `%` with two hex digits, at most 1024 characters) accept it.
pub fn http_path(s: &str) -> Rule {
    if !s.starts_with('/') {
        return fail("must be an absolute path starting with `/`");
    }
    max_len(s, 1024)?;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(|c| c.is_ascii_hexdigit());
            if hex(i + 1) && hex(i + 2) {
                i += 3;
                continue;
            }
            return fail("must write `%` only as an escape with two hex digits, such as `%20`");
        }
        if !path_char(b[i]) {
            let c = s[i..].chars().next().unwrap_or('?');
            return fail(format!(
                "must not contain {c:?}: use letters, digits, `-/._~!$&'()*+,;=:@` or %-escapes"
            ));
        }
        i += 1;
    }
    for seq in INVALID_PATH_SEQUENCES {
        if s.contains(seq) {
            return fail(format!("must not contain `{seq}`"));
        }
    }
    for suffix in INVALID_PATH_SUFFIXES {
        if s.ends_with(suffix) {
            return fail(format!("must not end with `{suffix}`"));
        }
    }
    Ok(())
}

/// Kubernetes `validateContainers`: an image must not have leading or trailing whitespace (Go's
/// `strings.TrimSpace`, Unicode White_Space, the same set as Rust's `str::trim`). The API server
/// accepts such a Deployment, then refuses every Pod it creates.
pub fn image(s: &str) -> Rule {
    if s.trim().is_empty() {
        return fail("must not be empty or only whitespace");
    }
    if s.trim() != s {
        return fail("must not have leading or trailing whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(r: Rule) -> bool {
        r.is_ok()
    }

    #[test]
    fn dns_labels_and_subdomains() {
        for good in ["a", "0", "a-b", "abc123", &"a".repeat(63)] {
            assert!(ok(dns1123_label(good)), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(!ok(dns1123_label(bad)), "{bad:?}");
        }
        for good in ["a.b", "a-1.b-2.c", "0.0", &format!("{}.b", "a".repeat(100))] {
            assert!(ok(dns1123_subdomain(good)), "{good}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "A.b",
            "a_b",
            "Bad_Name",
            &"a".repeat(254),
        ] {
            assert!(!ok(dns1123_subdomain(bad)), "{bad:?}");
        }
        assert!(ok(dns1035_label("a1")));
        assert!(!ok(dns1035_label("1a")));
        assert!(!ok(dns1035_label("")));
    }

    #[test]
    fn port_names_are_iana_service_names() {
        for good in [
            "http",
            "h",
            "8080-http",
            "http-8080",
            "a1-2b",
            "web-tls",
            "x1-2-3",
        ] {
            assert!(ok(port_name(good)), "{good}");
        }
        let cases = [
            ("", "empty"),
            ("8080", "at least one letter"),
            ("80", "at least one letter"),
            ("admin--tls", "two `-`"),
            ("-http", "begin or end"),
            ("http-", "begin or end"),
            ("HTTP", "lowercase"),
            ("http_1", "lowercase"),
            ("abcdefghijklmnop", "15"),
        ];
        for (bad, why) in cases {
            let e = port_name(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn qualified_names_label_values_and_annotations() {
        for good in ["a", "A_b.c-D", "example.com/x", "a/b", &"a".repeat(63)] {
            assert!(ok(qualified_name(good)), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a/b/c",
            "-a",
            "a-",
            "Example.com/x",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(!ok(qualified_name(bad)), "{bad:?}");
        }
        // Annotation keys are checked in lower case: an upper-case prefix is fine there.
        assert!(ok(annotation_key("Example.COM/Key")));
        assert!(ok(label_value("")));
        assert!(ok(label_value("v1.2_3-x")));
        assert!(!ok(label_value("-v")));
        assert!(!ok(label_value(&"a".repeat(64))));
    }

    #[test]
    fn annotations_size_counts_keys_and_values() {
        let k = "a".to_string();
        let at_limit = "v".repeat(ANNOTATIONS_MAX_BYTES - 1);
        assert!(ok(annotations_size([(&k, &at_limit)])));
        let over = "v".repeat(ANNOTATIONS_MAX_BYTES);
        let e = annotations_size([(&k, &over)]).unwrap_err();
        assert!(e.contains("262145 bytes"), "{e}");
    }

    #[test]
    fn env_var_names_and_keys() {
        for good in ["A", "a.b", "-x", "_X1", ".a", "my.env-name", "MY_ENV.NAME"] {
            assert!(ok(env_var_name(good)), "{good}");
        }
        for bad in ["", "1A", ".", "..", "..a", "A B", "A=B", "é"] {
            assert!(!ok(env_var_name(bad)), "{bad:?}");
        }
        for good in ["a", "1", ".a", "a..b", "tls.crt", "-_."] {
            assert!(ok(config_map_key(good)), "{good}");
        }
        for bad in ["", ".", "..", "..a", "a b", "a/b", &"a".repeat(254)] {
            assert!(!ok(config_map_key(bad)), "{bad:?}");
        }
    }

    #[test]
    fn hosts_refuse_ip_addresses_and_bad_wildcards() {
        for good in [
            "shop.example.com",
            "*.example.com",
            "a",
            "1.2.3.256",
            "1.2.3",
        ] {
            assert!(ok(host(good)), "{good}");
        }
        for bad in [
            "1.2.3.4",
            "010.0.0.1",
            "*",
            "*.",
            "a.*.com",
            "Shop.com",
            "a..b",
            "",
        ] {
            assert!(!ok(host(bad)), "{bad:?}");
        }
        assert!(is_ipv4_sloppy("0001.2.3.4"));
        assert!(!is_ipv4_sloppy("1.2.3.4.5"));
    }

    #[test]
    fn paths_follow_ingress_and_gateway_rules() {
        for good in [
            "/",
            "/api",
            "/api/v2/",
            "/a.b",
            "/%20x",
            "/~user",
            "/a:b@c",
            "/..a",
            "/.well-known",
        ] {
            assert!(ok(http_path(good)), "{good}");
        }
        let cases = [
            ("api", "absolute"),
            ("/api//v2", "`//`"),
            ("/a/./b", "`/./`"),
            ("/a/../b", "`/../`"),
            ("/a%2fb", "`%2f`"),
            ("/a%2Fb", "`%2F`"),
            ("/static/.", "`/.`"),
            ("/static/..", "`/..`"),
            ("/a#b", "'#'"),
            ("/a b", "' '"),
            ("/a%zz", "escape"),
            ("/a%2", "escape"),
            ("/{x}", "'{'"),
        ];
        for (bad, why) in cases {
            let e = http_path(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(!ok(http_path(&format!("/{}", "a".repeat(1024)))));
    }

    #[test]
    fn images_have_no_surrounding_whitespace() {
        assert!(ok(image("nginx:1.27")));
        for bad in [
            " nginx",
            "nginx ",
            "\tnginx",
            "nginx\n",
            " ",
            "",
            "nginx\u{a0}",
            "\u{3000}x",
        ] {
            assert!(!ok(image(bad)), "{bad:?}");
        }
    }

    /// The CRD's patterns and the functions above accept exactly the same strings.
    #[test]
    fn patterns_agree_with_the_functions() {
        let corpus: Vec<String> = {
            let atoms = [
                "a", "z", "0", "9", "-", "_", ".", "A", "*", "/", "%", "--", "..", "é", " ",
            ];
            let mut v: Vec<String> = atoms.iter().map(|s| s.to_string()).collect();
            for x in atoms {
                for y in atoms {
                    v.push(format!("{x}{y}"));
                    for z in ["a", "-", ".", "0"] {
                        v.push(format!("{x}{y}{z}"));
                        v.push(format!("{z}{x}{y}"));
                    }
                }
            }
            v.extend(["8080", "admin--tls", "a1-2b", "1-a", "1-2", "a-1-b"].map(String::from));
            v
        };
        let check = |pattern: &str, max: usize, f: fn(&str) -> Rule| {
            let schema =
                serde_json::json!({"type": "string", "pattern": pattern, "maxLength": max});
            let v = jsonschema::validator_for(&schema).unwrap();
            for s in &corpus {
                assert_eq!(
                    v.is_valid(&serde_json::json!(s)),
                    f(s).is_ok(),
                    "pattern {pattern} and its function disagree on {s:?}"
                );
            }
        };
        check(DNS_1123_LABEL_PATTERN, DNS_LABEL_MAX, dns1123_label);
        check(
            DNS_1123_SUBDOMAIN_PATTERN,
            DNS_SUBDOMAIN_MAX,
            dns1123_subdomain,
        );
        check(DNS_1035_LABEL_PATTERN, DNS_LABEL_MAX, dns1035_label);
        check(PORT_NAME_PATTERN, PORT_NAME_MAX, port_name);
        check(ENV_VAR_NAME_PATTERN, 100_000, env_var_name);
        check(CONFIG_MAP_KEY_PATTERN, DNS_SUBDOMAIN_MAX, config_map_key);
        check(HTTP_PATH_PATTERN, 1024, |s| {
            // The pattern carries the characters; the sequences are a CEL rule in the CRD.
            match http_path(s) {
                Err(e) if e.contains("must not contain `") || e.contains("must not end") => Ok(()),
                r => r,
            }
        });
    }
}
