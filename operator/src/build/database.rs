//! A database: its StatefulSet, its Service and its credentials Secret.
//!
//! The official images need a writable root filesystem (they write sockets and run files outside
//! the data volume), so database containers are the one documented exception to
//! `readOnlyRootFilesystem`; they still run as the images' unprivileged user (UID 999) with every
//! other setting of the restricted Pod Security Standard.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec},
        core::v1::{
            Container, ContainerPort, EnvVar, ExecAction, PersistentVolumeClaim,
            PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe, Secret, ServicePort,
            VolumeMount, VolumeResourceRequirements,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity, apis::meta::v1::ObjectMeta, util::intstr::IntOrString,
    },
};

use super::{Ctx, labels, pod, service};
use crate::api::{Engine, validate::DatabaseModel};

/// The UID and GID the official postgres, mysql and redis images run their server as.
const DATABASE_UID: i64 = 999;

/// Credentials generated once for a database, never regenerated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The application user's password.
    pub password: String,
    /// The administrator's password (mysql's root).
    pub admin_password: String,
}

impl Credentials {
    /// New credentials from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Credentials {
            password: random_secret(),
            admin_password: random_secret(),
        }
    }
}

/// 32 alphanumeric characters (about 190 bits) from the OS's CSPRNG; safe in URLs unescaped.
fn random_secret() -> String {
    use rand::{Rng, TryRngCore, distr::Alphanumeric, rngs::OsRng};
    OsRng
        .unwrap_err()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The port an engine listens on.
pub fn engine_port(engine: Engine) -> i32 {
    match engine {
        Engine::Postgres => 5432,
        Engine::Mysql => 3306,
        Engine::Redis => 6379,
    }
}

/// The user name of the application's database user.
pub const DATABASE_USER: &str = "app";

/// The name of the database created inside the engine: the database's name with `-` as `_`.
pub fn database_name(db: &DatabaseModel) -> String {
    db.spec.name.replace('-', "_")
}

/// The Secret with the database's connection details, for a database whose Secret does not
/// exist yet. Owned by the Application only with `deletionPolicy: Delete`; a retained database's
/// Secret outlives its Application, like its volume. Keys: `host`, `port`, `username`, `password`, `database`, `url` (redis: no
/// username or database), and `root-password` for mysql.
pub fn secret(ctx: &Ctx, db: &DatabaseModel, creds: &Credentials) -> Secret {
    let host = format!("{}.{}.svc", db.object_name, ctx.model.namespace);
    let port = engine_port(db.spec.engine);
    let name = database_name(db);
    let pw = &creds.password;
    let mut data: BTreeMap<String, String> = BTreeMap::from([
        ("host".into(), host.clone()),
        ("port".into(), port.to_string()),
        ("password".into(), pw.clone()),
    ]);
    let url = match db.spec.engine {
        Engine::Postgres => format!("postgresql://{DATABASE_USER}:{pw}@{host}:{port}/{name}"),
        Engine::Mysql => format!("mysql://{DATABASE_USER}:{pw}@{host}:{port}/{name}"),
        Engine::Redis => format!("redis://:{pw}@{host}:{port}/0"),
    };
    data.insert("url".into(), url);
    if db.spec.engine != Engine::Redis {
        data.insert("username".into(), DATABASE_USER.into());
        data.insert("database".into(), name);
    }
    if db.spec.engine == Engine::Mysql {
        data.insert("root-password".into(), creds.admin_password.clone());
    }
    let mut metadata = ctx.meta(&db.secret_name, &db.spec.name, labels::Role::Database);
    if !db.delete_volume {
        // Retained with the volume: no owner, so neither prune nor the garbage collector
        // removes it while the data it opens may still exist.
        metadata.owner_references = None;
    }
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        string_data: Some(data),
        ..Secret::default()
    }
}

/// The database's ClusterIP Service.
pub fn service(ctx: &Ctx, db: &DatabaseModel) -> k8s_openapi::api::core::v1::Service {
    let port = engine_port(db.spec.engine);
    service::cluster_ip(
        ctx,
        &db.object_name,
        &db.spec.name,
        labels::Role::Database,
        vec![ServicePort {
            name: Some(engine_name(db.spec.engine).into()),
            port,
            target_port: Some(IntOrString::String(engine_name(db.spec.engine).into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        }],
    )
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "postgres",
        Engine::Mysql => "mysql",
        Engine::Redis => "redis",
    }
}

/// The database's single-replica StatefulSet with a `data` volume claim.
pub fn stateful_set(ctx: &Ctx, db: &DatabaseModel) -> StatefulSet {
    let app = &ctx.model.name;
    StatefulSet {
        metadata: ctx.meta(&db.object_name, &db.spec.name, labels::Role::Database),
        spec: StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(db.object_name.clone()),
            selector: labels::selector(app, &db.spec.name),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(if db.delete_volume { "Delete" } else { "Retain" }.into()),
                    when_scaled: Some("Retain".into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::labels(app, &db.spec.name, labels::Role::Database)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container(db)],
                    security_context: Some(pod::pod_security(
                        Some(DATABASE_UID),
                        Some(DATABASE_UID),
                    )),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![data_claim(app, db)]),
            ..StatefulSetSpec::default()
        },
        status: None,
    }
}

/// How an engine's image is run: its environment (credentials from the Secret), where it keeps
/// its data, its arguments and the command that tells it is ready.
struct EngineRun {
    env: Vec<EnvVar>,
    data_path: &'static str,
    args: Option<Vec<String>>,
    ready_command: Vec<String>,
}

fn engine_run(engine: Engine, secret: &str) -> EngineRun {
    match engine {
        Engine::Postgres => EngineRun {
            env: vec![
                pod::secret_env("POSTGRES_USER", secret, "username"),
                pod::secret_env("POSTGRES_PASSWORD", secret, "password"),
                pod::secret_env("POSTGRES_DB", secret, "database"),
                literal_env("PGDATA", "/var/lib/postgresql/data/pgdata"),
            ],
            data_path: "/var/lib/postgresql/data",
            args: None,
            ready_command: sh("pg_isready -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -h 127.0.0.1"),
        },
        Engine::Mysql => EngineRun {
            env: vec![
                pod::secret_env("MYSQL_USER", secret, "username"),
                pod::secret_env("MYSQL_PASSWORD", secret, "password"),
                pod::secret_env("MYSQL_DATABASE", secret, "database"),
                pod::secret_env("MYSQL_ROOT_PASSWORD", secret, "root-password"),
            ],
            data_path: "/var/lib/mysql",
            args: None,
            ready_command: sh(
                "mysqladmin ping -h 127.0.0.1 -u\"$MYSQL_USER\" -p\"$MYSQL_PASSWORD\"",
            ),
        },
        Engine::Redis => EngineRun {
            env: vec![pod::secret_env("REDIS_PASSWORD", secret, "password")],
            data_path: "/data",
            args: Some(vec![
                "--requirepass".into(),
                "$(REDIS_PASSWORD)".into(),
                "--appendonly".into(),
                "yes".into(),
            ]),
            ready_command: sh(
                "redis-cli -a \"$REDIS_PASSWORD\" --no-auth-warning ping | grep -q PONG",
            ),
        },
    }
}

/// The database's one container.
fn container(db: &DatabaseModel) -> Container {
    let engine = db.spec.engine;
    let run = engine_run(engine, &db.secret_name);
    Container {
        name: engine_name(engine).into(),
        image: Some(db.image.clone()),
        args: run.args,
        ports: Some(vec![ContainerPort {
            name: Some(engine_name(engine).into()),
            container_port: engine_port(engine),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(run.env),
        resources: pod::resources(db.spec.resources.as_ref()),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(run.ready_command),
            }),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            ..Probe::default()
        }),
        security_context: Some(pod::container_security(false)),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: run.data_path.into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    }
}

/// The claim template of the database's volume (immutable once the StatefulSet exists).
fn data_claim(app: &str, db: &DatabaseModel) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(labels::labels(app, &db.spec.name, labels::Role::Database)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: db
                .spec
                .storage
                .as_ref()
                .and_then(|s| s.storage_class_name.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(db.storage_size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn literal_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}
