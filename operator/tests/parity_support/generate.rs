//! Random Applications, structure-aware: built field by field from the Rust types of
//! `keelson.dev/v1alpha1` (the types the CRD schema is generated from), each field drawn mostly
//! from values Keelson should accept and sometimes from adversarial ones: unicode, whitespace,
//! `--`, digits only, long names, paths with `//`, `/./` or `%2F`, quantities with exponents,
//! signs and huge values, YAML 1.1 look-alikes, and list sizes up to the CRD's limits.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::LazyLock,
};

use keelson::api::*;
use proptest::{
    collection::vec,
    option,
    prelude::*,
    sample::{Index, select},
    strategy::SBoxedStrategy,
};

/// A strategy built once (building one parses its regular expressions) and shared.
macro_rules! cached {
    ($(#[$m:meta])* fn $name:ident() -> $t:ty $body:block) => {
        $(#[$m])*
        fn $name() -> SBoxedStrategy<$t> {
            static S: LazyLock<SBoxedStrategy<$t>> = LazyLock::new(|| $body.sboxed());
            S.clone()
        }
    };
}

/// An Application's name, namespace and spec.
#[derive(Clone, Debug)]
pub struct GeneratedApp {
    pub name: String,
    pub namespace: String,
    pub spec: ApplicationSpec,
}

/// Strings that break one rule or another, shared by every free-text field.
pub const ADVERSARIAL: &[&str] = &[
    "",
    " ",
    "\t",
    "\n",
    "a b",
    " a",
    "a ",
    "a\u{a0}",
    "\u{3000}a",
    "\u{85}",
    "\u{feff}a",
    "\u{200b}",
    "ü",
    "日本",
    "🦀",
    "Ab",
    "A",
    "-a",
    "a-",
    "a--b",
    "--",
    "0",
    "1",
    "80",
    "8080",
    "007",
    "a.b",
    "a..b",
    ".",
    "..",
    "..a",
    ".a",
    "a.",
    "a/b",
    "a//b",
    "/a",
    "a%2Fb",
    "%2f",
    "*",
    "*.a",
    "a_b",
    "a:b",
    "a=b",
    "on",
    "off",
    "yes",
    "no",
    "y",
    "n",
    "~",
    "null",
    "true",
    "false",
    "010",
    "0x1F",
    "1_000",
    "1e3",
    ".inf",
    "\n\ta",
    "\ta",
    "a\n",
    "\r\n",
    "#a",
    "&a",
    "*a",
    "!a",
    "{a}",
    "[a]",
    "- a",
    "a: b",
    "'a'",
    "\"a\"",
    "\\",
    "\u{0}",
    "\u{7f}",
    "%",
    "a\u{301}",
];

cached! { fn adversarial() -> String {
    prop_oneof![
        8 => select(ADVERSARIAL).prop_map(str::to_string),
        2 => select(&[40usize, 52, 53, 63, 64, 128, 253, 254, 1024][..]).prop_map(|n| "a".repeat(n)),
        3 => "\\PC{0,24}",
        1 => ".{0,8}",
    ]
} }

/// Mostly `valid`, sometimes adversarial or from `special`.
fn field(valid: &'static str, special: &'static [&'static str]) -> SBoxedStrategy<String> {
    let bad = if special.is_empty() {
        adversarial()
    } else {
        prop_oneof![2 => adversarial(), 3 => select(special).prop_map(str::to_string)].sboxed()
    };
    Adverse {
        valid: valid.prop_map(|v: String| v).sboxed(),
        bad,
    }
    .sboxed()
}

thread_local! {
    /// How likely, in per mille, each field of the Application being generated is adversarial.
    static ADVERSITY: std::cell::Cell<u32> = const { std::cell::Cell::new(50) };
}

/// A field that is adversarial with the current Application's [`ADVERSITY`]: most Applications
/// have a few odd fields among valid ones, so that Keelson accepts many of them.
#[derive(Clone, Debug)]
struct Adverse<T: std::fmt::Debug> {
    valid: SBoxedStrategy<T>,
    bad: SBoxedStrategy<T>,
}

impl<T: std::fmt::Debug + 'static> Strategy for Adverse<T> {
    type Tree = Box<dyn proptest::strategy::ValueTree<Value = T>>;
    type Value = T;

    fn new_tree(
        &self,
        runner: &mut proptest::test_runner::TestRunner,
    ) -> proptest::strategy::NewTree<Self> {
        if runner.rng().next_u32() % 1000 < ADVERSITY.get() {
            self.bad.new_tree(runner)
        } else {
            self.valid.new_tree(runner)
        }
    }
}

const PORT_NAMES: &[&str] = &[
    "8080",
    "80",
    "1",
    "admin--tls",
    "-a",
    "a-",
    "h2c",
    "a1",
    "1a",
    "x-y-z",
    "abcdefghijklmno",
    "abcdefghijklmnop",
    "HTTP",
    "http_2",
    "grpc-web",
];
const PATHS: &[&str] = &[
    "/api//v2",
    "/static/.",
    "/a/./b",
    "/a/../b",
    "/a%2Fb",
    "/a%2fb",
    "/..",
    "/a/..",
    "/a/.",
    "/a#b",
    "/a?b",
    "/ü",
    "/a\"b",
    "/a'b",
    "/a|b",
    "/a^b",
    "/a`b",
    "/a\\b",
    "/a[b]",
    "/~a",
    "/a:b",
    "/a@b",
    "/$",
    "/a*",
    "//",
    "/.",
    "/%",
    "/%zz",
    "/%41",
    "/a%",
    "/a<b>",
    "/\u{7f}",
    "/a\u{a0}",
];
const HOSTS: &[&str] = &[
    "*.example.com",
    "1.2.3.4",
    "127.0.0.1",
    "a",
    "xn--bcher-kva.example",
    "a-.com",
    "0.com",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
];
/// Quantities: valid ones, typos and the API server's corner cases.
pub const QUANTITIES: &[&str] = &[
    "100m",
    "250m",
    "1",
    "2",
    "0.5",
    "128Mi",
    "256Mi",
    "1Gi",
    "10Gi",
    "500M",
    "1G",
    "256m",
    "1e1.5",
    "1e.5",
    "1e1.",
    "-1",
    "-100m",
    "-1Gi",
    "0",
    "0.0",
    "1000000000000000001",
    "1000000000000000000",
    "999999999999999999",
    "1e-2147483648",
    "1e2147483647",
    "1e-9",
    "1e-10",
    "1n",
    "1u",
    "1.5n",
    "0.0001",
    "1001",
    "1000",
    "1e3",
    "1E3",
    "1e+3",
    "+1",
    "1.",
    ".5",
    "9223372036854775807",
    "9223372036854775808",
    "1e19",
    "1Ei",
    "8Ei",
    "1k",
    "1Ki",
    "1023",
    "1048575",
    "1048576",
    "1Mi",
    "0.9Mi",
    "+.5",
    "1e18",
    "1e-18",
    "1e100",
    "1e-100",
    "1e101",
    "1000001m",
    "1000000m",
];
/// Request and limit pairs that differ in the last digit or only in notation.
const QUANTITY_PAIRS: &[(&str, &str)] = &[
    ("1000000000000000001", "1000000000000000000"),
    ("100m", "0.1"),
    ("1Gi", "1073741824"),
    ("1001m", "1"),
    ("1Ki", "1k"),
    ("1e3", "1k"),
    ("9223372036854775807", "1e19"),
    ("1e-10", "1n"),
];
const IMAGES: &[&str] = &[
    " nginx:1.27",
    "nginx:1.27 ",
    "nginx:1.27\n",
    "\tnginx",
    "nginx\u{a0}",
    "\u{3000}nginx",
    " ",
    "NGINX",
    "a b",
    "nginx:1.27\u{85}",
    "\u{200b}nginx",
];
const ENV_NAMES: &[&str] = &[
    "1A", "a=b", "a b", "-a", ".a", "_a", "ü", "A.B", "a-b", "A\n", "PATH",
];
const YAMLISH: &[&str] = &[
    "on", "off", "yes", "no", "y", "n", "Y", "~", "null", "true", "010", "0x10", "1_000", "1e3",
    "\n\ta", "\ta", "a: b", "- a", "#a", "", "0o17", "1:20", ".NaN", "=", "<<", "|", ">", "'",
    "\"",
];
const OBJECT_NAMES: &[&str] = &[
    "My_Secret",
    "a..b",
    "-a",
    "a.",
    ".a",
    "a_b",
    "A",
    "ü",
    "a/b",
    "a b",
    "a.b-c",
    "0",
];
const KEYS: &[&str] = &[
    ".", "..", "..a", "a/b", "a b", "a:b", "ü", ".a", "a..b", "-", "_", "A",
];
const ANNOTATION_KEYS: &[&str] = &[
    "a/b/c",
    "/a",
    "Example.com/A",
    "kubernetes.io/",
    "-a",
    "a b",
    "ü",
    "a_b/c",
    "a.b/-c",
    "example.com/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];
const DURATIONS: &[&str] = &[
    "0",
    "1y",
    "1ms",
    "999999999999h",
    "1m30s",
    "0s",
    "1w2d",
    "30",
];
const VERSIONS: &[&str] = &["0", "1.2.3", "9999999999999999", "01", "16.0", "8.4.99"];
const SECTION_NAMES: &[&str] = &["HTTPS", "a_b", "a.b", "a..b", "-a", "https-1"];

cached! { fn app_name() -> String {
    field("[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6}){0,2}", &["a", "x1", "shop"])
} }

cached! { fn namespace() -> String {
    prop_oneof![
        4 => Just("default".to_string()),
        2 => "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        1 => Just("n".repeat(63)),
    ]
} }

cached! { fn component_name() -> String {
    field("[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?", &["db", "web", "a", "a1"])
} }

cached! { fn port_name() -> String {
    field("[a-z]{1,6}(-[a-z0-9]{1,4})?", PORT_NAMES)
} }

cached! { fn path() -> String {
    Adverse {
        valid: "/([a-z0-9]{1,8}(/[a-z0-9_.-]{1,8}){0,2}/?)?".sboxed(),
        bad: prop_oneof![
            4 => select(PATHS).prop_map(str::to_string),
            1 => "/\\PC{0,12}",
            1 => adversarial(),
        ].sboxed(),
    }
} }

fn quantity_from(
    valid: &'static [&'static str],
    slips: &'static [&'static str],
) -> SBoxedStrategy<String> {
    Adverse {
        valid: select(valid).prop_map(str::to_string).sboxed(),
        bad: prop_oneof![
            2 => select(slips).prop_map(str::to_string),
            6 => select(QUANTITIES).prop_map(str::to_string),
            2 => "[+-]?[0-9]{0,20}(\\.[0-9]{0,5})?([numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]{1,11})?",
            1 => adversarial(),
        ]
        .sboxed(),
    }
    .sboxed()
}

cached! { fn cpu() -> String { quantity_from(&["100m", "250m", "1", "2", "0.5", "1500m", "16"], &["1e1.5", "-1", "1001", "1e-2147483648", "128Mi"]) } }
cached! { fn memory() -> String { quantity_from(&["128Mi", "256Mi", "1Gi", "4Gi", "500M", "2G", "1048576"], &["256m", "512m", "1Ki", "0.5", "-1Gi"]) } }

cached! { fn amounts() -> ResourceAmounts {
    (option::weighted(0.6, cpu()), option::weighted(0.6, memory()))
        .prop_map(|(cpu, memory)| ResourceAmounts { cpu, memory })
} }

cached! { fn resources() -> Option<ResourcesSpec> {
    let pair = (select(QUANTITY_PAIRS), any::<bool>()).prop_map(|((req, lim), cpu)| {
        let a = |q: &str| ResourceAmounts {
            cpu: cpu.then(|| q.to_string()),
            memory: (!cpu).then(|| q.to_string()),
        };
        ResourcesSpec {
            requests: Some(a(req)),
            limits: Some(a(lim)),
        }
    });
    prop_oneof![
        4 => Just(None),
        5 => (option::of(amounts()), option::of(amounts()), any::<u8>())
            .prop_map(|(mut requests, mut limits, swap)| {
                // Mostly a request at or below its limit: the other way is refused.
                if swap % 8 != 0
                    && let (Some(r), Some(l)) = (&mut requests, &mut limits)
                {
                    for (rq, lq) in [(&mut r.cpu, &mut l.cpu), (&mut r.memory, &mut l.memory)] {
                        if let (Some(a), Some(b)) = (rq.as_ref(), lq.as_ref())
                            && let (Some(x), Some(y)) = (super::quantity::parse(a), super::quantity::parse(b))
                            && x.nanos > y.nanos
                        {
                            std::mem::swap(rq, lq);
                        }
                    }
                }
                Some(ResourcesSpec { requests, limits })
            }),
        1 => pair.prop_map(Some),
    ]
} }

cached! { fn image() -> String {
    field("(ghcr\\.io/acme/)?[a-z]{1,8}(:[0-9]\\.[0-9]{1,2})?", IMAGES)
} }

cached! { fn object_name() -> String {
    field("[a-z][a-z0-9-]{0,10}[a-z0-9]", OBJECT_NAMES)
} }

cached! { fn key_ref() -> KeyRef {
    (object_name(), field("[a-zA-Z][a-zA-Z0-9._-]{0,10}", KEYS), option::of(any::<bool>()))
        .prop_map(|(name, key, optional)| KeyRef { name, key, optional })
} }

cached! { fn env_var() -> EnvVarSpec {
    let value = prop_oneof![
        4 => "[a-zA-Z0-9 ./:-]{0,20}",
        3 => select(YAMLISH).prop_map(str::to_string),
        2 => adversarial(),
        1 => select(&[1024usize, 32768][..]).prop_map(|n| "v".repeat(n)),
    ];
    let source = prop_oneof![
        Just(None),
        key_ref().prop_map(|r| Some(EnvSource { secret_key_ref: Some(r), config_map_key_ref: None })),
        key_ref().prop_map(|r| Some(EnvSource { secret_key_ref: None, config_map_key_ref: Some(r) })),
    ];
    (field("[A-Z_][A-Z0-9_]{0,10}", ENV_NAMES), prop_oneof![3 => value.prop_map(Some), 1 => Just(None)], source)
        .prop_map(|(name, value, value_from)| match value_from {
            Some(_) => EnvVarSpec { name, value: None, value_from },
            None => EnvVarSpec { name, value, value_from: None },
        })
} }

fn count(small: std::ops::RangeInclusive<usize>, max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![8 => small, 1 => 0..=max]
}

cached! { fn ports() -> Vec<Port> {
    let port = (
        port_name(),
        prop_oneof![60 => 1..=65535i32, 1 => select(&[0, -1, 65536, 65535, 1][..])],
        option::of(prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)]),
    )
        .prop_map(|(name, port, protocol)| Port { name, port, protocol });
    count(0..=3, 16).prop_flat_map(move |n| vec(port.clone(), n))
} }

fn probe(ports: Vec<String>) -> impl Strategy<Value = ProbeSpec> {
    let has_ports = !ports.is_empty();
    let port_ref = if ports.is_empty() {
        port_name().boxed()
    } else {
        prop_oneof![20 => select(ports), 1 => port_name()].boxed()
    };
    let net = if has_ports { 10 } else { 1 };
    let handler = prop_oneof![
        net => (probe_path(), port_ref.clone()).prop_map(|(path, port)| (Some(HttpGetProbe { path, port }), None, None)),
        net => port_ref.prop_map(|port| (None, Some(TcpSocketProbe { port }), None)),
        10 => vec(command_word(), 1..3).prop_map(|command| (None, None, Some(ExecProbe { command }))),
    ];
    let secs = |lo: i32| option::weighted(0.3, prop_oneof![5 => lo..=60, 1 => lo..=3600]);
    (
        handler,
        secs(0),
        secs(1),
        secs(1),
        option::weighted(0.3, 1..=100i32),
    )
        .prop_map(
            |((http_get, tcp_socket, exec), initial, period, timeout, failure)| ProbeSpec {
                http_get,
                tcp_socket,
                exec,
                initial_delay_seconds: initial,
                period_seconds: period,
                timeout_seconds: timeout,
                failure_threshold: failure,
            },
        )
}

cached! { fn scaling() -> Scaling {
    (option::of(1..=10i32), option::of(1..=20i32), option::weighted(0.5, 1..=100i32)).prop_map(
        |(min, max, target)| Scaling {
            min_replicas: min,
            max_replicas: max.map(|m| m.max(min.unwrap_or(1))),
            target_cpu_utilization: target,
        },
    )
} }

cached! {
/// Fields of a service that do not refer to its own ports.
fn service_base() -> ServiceSpec {
    let run = (
        option::weighted(0.2, prop_oneof![1..=65535i64, Just(2147483647i64), Just(1)]),
        option::of(any::<bool>()),
        option::weighted(0.3, object_name()),
        option::of(any::<bool>()),
        option::of(prop_oneof![Just(PullPolicy::Always), Just(PullPolicy::IfNotPresent), Just(PullPolicy::Never)]),
    );
    let count_replicas = prop_oneof![
        2 => Just((None, None)),
        1 => (0..=1000i32).prop_map(|r| (Some(r), None)),
        2 => scaling().prop_map(|s| (None, Some(s))),
    ];
    (
        component_name(),
        image(),
        vec(prop_oneof![3 => "[a-z/-]{1,12}", 1 => adversarial()], 0..3),
        vec(prop_oneof![3 => "[a-z=/-]{1,12}", 1 => adversarial(), 1 => select(YAMLISH).prop_map(str::to_string)], 0..4),
        ports(),
        prop_oneof![
            8 => vec(env_var(), 0..=3),
            // Long lists of plain variables: one adversarial entry would refuse the whole list.
            1 => vec(("[A-Z_][A-Z0-9_]{0,10}", "[a-zA-Z0-9 ./:-]{0,20}").prop_map(|(name, value)| EnvVarSpec { name, value: Some(value), value_from: None }), 4..=128),
        ]
        .prop_map(|mut env| {
            // Distinct names (the list is a map keyed by name).
            let mut seen = BTreeSet::new();
            env.retain(|e| seen.insert(e.name.clone()));
            env
        }),
        count_replicas,
        resources(),
        run,
    )
        .prop_map(|(name, image, command, args, ports, env, (replicas, scaling), resources, run)| {
            let (run_as_user, read_only_root_filesystem, service_account_name, automount_service_account_token, image_pull_policy) = run;
            // An autoscaler needs a CPU request (mostly given).
            let mut resources = resources;
            if scaling.is_some() && name.len() % 8 != 0 {
                let r = resources.get_or_insert_with(ResourcesSpec::default);
                r.requests.get_or_insert_with(ResourceAmounts::default).cpu.get_or_insert_with(|| "100m".into());
            }
            ServiceSpec {
                name,
                image,
                image_pull_policy,
                command,
                args,
                ports,
                env,
                uses: Vec::new(),
                replicas,
                scaling,
                resources,
                probes: None,
                metrics: None,
                run_as_user,
                read_only_root_filesystem,
                service_account_name,
                automount_service_account_token,
            }
        })
} }

/// A service with probes and metrics on its own ports (mostly).
fn service() -> impl Strategy<Value = ServiceSpec> {
    service_base().prop_flat_map(|s| {
        let names: Vec<String> = s.ports.iter().map(|p| p.name.clone()).collect();
        let probes = (
            option::weighted(0.4, probe(names.clone())),
            option::weighted(0.4, probe(names.clone())),
            option::weighted(0.2, probe(names.clone())),
        )
            .prop_map(|(liveness, readiness, startup)| Probes {
                liveness: liveness.map(Box::new),
                readiness: readiness.map(Box::new),
                startup: startup.map(Box::new),
            });
        let metrics = if names.is_empty() {
            Just(None).boxed()
        } else {
            option::weighted(
                0.4,
                (
                    select(names),
                    option::of(metrics_path()),
                    option::of(interval()),
                )
                    .prop_map(|(port, path, interval)| MetricsSpec {
                        port,
                        path,
                        interval,
                    }),
            )
            .boxed()
        };
        (Just(s), option::weighted(0.5, probes), metrics).prop_map(|(mut s, probes, metrics)| {
            s.probes = probes;
            s.metrics = metrics;
            s
        })
    })
}

cached! { fn database() -> Database {
    (
        component_name(),
        prop_oneof![Just(Engine::Postgres), Just(Engine::Mysql), Just(Engine::Redis)],
        option::weighted(0.3, field("[0-9]{1,2}(\\.[0-9]{1,2})?", VERSIONS)),
        option::weighted(0.2, image()),
        option::weighted(
            0.6,
            (
                option::of(prop_oneof![3 => select(&["1Gi", "10Gi", "0", "-1Gi", "0Gi", "256m", "1Ki", "0.5"][..]).prop_map(str::to_string), 2 => memory()]),
                option::weighted(0.3, object_name()),
            )
                .prop_map(|(size, storage_class_name)| Storage { size, storage_class_name }),
        ),
        option::of(prop_oneof![Just(DeletionPolicy::Retain), Just(DeletionPolicy::Delete)]),
        resources(),
    )
        .prop_map(|(name, engine, version, image, storage, deletion_policy, resources)| Database {
            name,
            engine,
            version,
            image,
            storage,
            deletion_policy,
            resources,
        })
} }

cached! { fn annotations() -> BTreeMap<String, String> {
    let key = field("([a-z]{1,8}\\.[a-z]{2,4}/)?[a-z][a-z0-9-]{0,10}", ANNOTATION_KEYS);
    let value = prop_oneof![
        6 => "[a-zA-Z0-9 ./:=-]{0,30}",
        2 => select(YAMLISH).prop_map(str::to_string),
        1 => adversarial(),
        1 => select(&[4096usize, 131072, 262100, 270000][..]).prop_map(|n| "v".repeat(n)),
    ];
    prop_oneof![
        3 => Just(BTreeMap::new()),
        2 => proptest::collection::btree_map(key, value, 1..4),
    ]
} }

cached! { fn parent_refs() -> Vec<ParentRef> {
    let pr = (
        field("[a-z][a-z0-9-]{0,10}", OBJECT_NAMES),
        option::weighted(0.3, field("[a-z][a-z0-9-]{0,10}", OBJECT_NAMES)),
        option::weighted(0.3, field("[a-z][a-z0-9-]{0,8}", SECTION_NAMES)),
    )
        .prop_map(|(name, namespace, section_name)| ParentRef { name, namespace, section_name });
    (vec(pr, 1..=3), any::<u8>()).prop_map(|(mut refs, dup)| {
        // Duplicates of a parent, with and without sectionName.
        if dup % 5 == 0 {
            refs.push(refs[0].clone());
        }
        refs.truncate(8);
        refs
    })
} }

cached! {
/// Everything of a gateway except its routes.
fn gateway_base() -> GatewaySpec {
    (
        prop_oneof![3 => Just(Vec::new()), 2 => vec(field("[a-z]{1,8}(\\.[a-z]{2,5}){1,2}", HOSTS), 1..4)],
        prop_oneof![
            // An Ingress, with an optional class and TLS.
            3 => (option::weighted(0.4, object_name()), option::weighted(0.3, object_name()))
                .prop_map(|(class_name, tls)| (class_name, tls.map(|secret_name| GatewayTls { secret_name }), Vec::new())),
            // An HTTPRoute.
            2 => parent_refs().prop_map(|p| (None, None, p)),
        ],
        annotations(),
    )
        .prop_map(|(hosts, (class_name, tls, parent_refs), annotations)| GatewaySpec {
            hosts,
            tls,
            class_name,
            parent_refs,
            annotations,
            routes: Vec::new(),
        })
} }

fn routes(services: Vec<ServiceSpec>) -> impl Strategy<Value = Vec<Route>> {
    let n = prop_oneof![6 => 1..=3usize, 2 => 4..=16usize, 2 => 17..=20usize, 1 => 21..=64usize];
    let route = (path(), any::<Index>(), any::<Index>(), 0..20u8, port_name()).prop_map(
        move |(path, svc, port, how, other_port)| {
            // Mostly a service with ports: a route to one without is refused.
            let with_ports: Vec<&ServiceSpec> =
                services.iter().filter(|s| !s.ports.is_empty()).collect();
            let s = if how < 19 && !with_ports.is_empty() {
                *svc.get(&with_ports)
            } else {
                svc.get(&services)
            };
            let port = match how {
                0..=11 => None,
                12..=18 if !s.ports.is_empty() => Some(port.get(&s.ports).name.clone()),
                _ => Some(other_port),
            };
            Route {
                path,
                service: s.name.clone(),
                port,
            }
        },
    );
    n.prop_flat_map(move |n| vec(route.clone(), n))
        .prop_map(|mut rs| {
            // Distinct paths (duplicates are refused, which tells nothing).
            let mut seen = BTreeSet::new();
            for (i, r) in rs.iter_mut().enumerate() {
                if !seen.insert(r.path.clone()) {
                    r.path = format!("{}/r{i}", r.path.trim_end_matches('/'));
                    seen.insert(r.path.clone());
                }
            }
            rs
        })
}

fn dedupe(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    names
        .enumerate()
        .map(|(i, n)| {
            let n = if seen.contains(&n) {
                format!("{n}{i}")
            } else {
                n
            };
            seen.insert(n.clone());
            n
        })
        .collect()
}

/// A whole Application: services (mostly 1-3, up to the CRD's 32), databases the services use,
/// a gateway routing to the services, and a shared scaling policy.
pub fn application() -> impl Strategy<Value = GeneratedApp> {
    // Per mille of adversarial fields: none, a few, or many.
    select(&[0u32, 0, 5, 10, 20, 30, 50, 100, 300][..]).prop_flat_map(|adversity| {
        ADVERSITY.set(adversity);
        application_at()
    })
}

fn application_at() -> impl Strategy<Value = GeneratedApp> {
    let services = count(1..=3, 32).prop_flat_map(|n| vec(service(), n.max(1)));
    let databases = count(0..=2, 16).prop_flat_map(|n| vec(database(), n));
    (
        app_name(),
        namespace(),
        services,
        databases,
        option::weighted(0.2, scaling()),
        any::<u64>(),
    )
        .prop_flat_map(
            |(name, namespace, mut services, mut databases, scaling, seed)| {
                let svc_names = dedupe(services.iter().map(|s| s.name.clone()));
                for (s, n) in services.iter_mut().zip(svc_names) {
                    s.name = n;
                    let mut ports = BTreeSet::new();
                    s.ports.retain(|p| ports.insert(p.name.clone()));
                }
                let taken: BTreeSet<String> = services.iter().map(|s| s.name.clone()).collect();
                let db_names = dedupe(databases.iter().map(|d| {
                    if taken.contains(&d.name) {
                        format!("{}-db", d.name)
                    } else {
                        d.name.clone()
                    }
                }));
                for (d, n) in databases.iter_mut().zip(db_names) {
                    d.name = n;
                }
                for (i, s) in services.iter_mut().enumerate() {
                    s.uses = databases
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| (seed >> ((i * 7 + j) % 64)) & 1 == 1)
                        .map(|(_, d)| d.name.clone())
                        .collect();
                }
                let gateway = option::weighted(
                    0.7,
                    (gateway_base(), routes(services.clone())).prop_map(|(mut g, routes)| {
                        g.routes = routes;
                        g
                    }),
                );
                (
                    Just((name, namespace, services, databases, scaling)),
                    gateway,
                )
            },
        )
        .prop_map(
            |((name, namespace, services, databases, scaling), gateway)| GeneratedApp {
                name,
                namespace,
                spec: ApplicationSpec {
                    gateway,
                    services,
                    databases,
                    scaling,
                },
            },
        )
}

cached! { fn probe_path() -> String { field("/[a-z]{0,8}", PATHS) } }
cached! { fn metrics_path() -> String { field("/[a-z]{1,8}", PATHS) } }
cached! { fn interval() -> String { field("[1-9][0-9]?(s|m)", DURATIONS) } }
cached! { fn command_word() -> String { prop_oneof![3 => "[a-z/ -]{1,12}", 1 => adversarial()] } }
