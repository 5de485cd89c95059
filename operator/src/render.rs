//! Offline rendering: the same validate and build the controller runs, printed as YAML.
//!
//! Input is read as kubectl reads it ([`yaml`]: YAML 1.1 scalars, bounded size and depth);
//! output is YAML that kubectl reads back to the same values: strings that YAML 1.1 would take
//! for something else are quoted, and no block scalars are written (a block scalar whose content
//! begins with a tab is unreadable for kubectl), so multi-line strings are double-quoted.

pub mod yaml;

use std::collections::BTreeMap;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::{
    api::{Application, InvalidSpec, validate::validate_value},
    build::{self, ApiCapabilities, Credentials},
};

/// The owner uid `render` puts on children when the input has no `metadata.uid`: the real one
/// exists only once the API server has stored the Application.
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Why an input could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The input is not YAML kubectl can read, or beyond the reader's limits.
    #[error("not valid YAML: {source}")]
    Yaml {
        /// The reader's error.
        source: yaml::YamlError,
    },
    /// A document is something other than an Application.
    #[error(
        "document {doc}: expected apiVersion keelson.dev/v1alpha1, kind Application; found {found}"
    )]
    NotAnApplication {
        /// 1-based document number.
        doc: usize,
        /// What the document said it was.
        found: String,
    },
    /// A document's `metadata.namespace` is not the namespace asked for (as kubectl refuses).
    #[error(
        "document {doc}: the namespace from the provided object \"{found}\" does not match the namespace \"{wanted}\": remove metadata.namespace from the file, or render with -n {found}"
    )]
    NamespaceMismatch {
        /// 1-based document number.
        doc: usize,
        /// The document's `metadata.namespace`.
        found: String,
        /// The namespace asked for with `-n`.
        wanted: String,
    },
    /// A document lacks `metadata.name`.
    #[error("document {doc}: metadata.name is required")]
    MissingName {
        /// 1-based document number.
        doc: usize,
    },
    /// The spec is invalid.
    #[error("Application {name}: invalid spec: {source}")]
    Invalid {
        /// The Application's name.
        name: String,
        /// Every problem found.
        source: InvalidSpec,
    },
}

/// Render every Application in `input` (one or more YAML documents) with fresh credentials.
pub fn render(input: &str, caps: ApiCapabilities) -> Result<String, RenderError> {
    render_in(input, None, caps)
}

/// [`render`] into `namespace` (`kubectl apply -n`): the namespace of documents without
/// `metadata.namespace`; a document naming another one is refused. Without it, documents
/// without a namespace render into `default`, as kubectl's default context does.
pub fn render_in(
    input: &str,
    namespace: Option<&str>,
    caps: ApiCapabilities,
) -> Result<String, RenderError> {
    let objects = render_values_in(input, namespace, caps, |_| Credentials::generate())?;
    Ok(to_yaml_stream(&objects))
}

/// Render with credentials from `creds` (given each database's name): deterministic output for
/// tests.
pub fn render_values(
    input: &str,
    caps: ApiCapabilities,
    creds: impl Fn(&str) -> Credentials,
) -> Result<Vec<Value>, RenderError> {
    render_values_in(input, None, caps, creds)
}

/// [`render_values`] into `namespace` (see [`render_in`]).
pub fn render_values_in(
    input: &str,
    namespace: Option<&str>,
    caps: ApiCapabilities,
    creds: impl Fn(&str) -> Credentials,
) -> Result<Vec<Value>, RenderError> {
    let mut out = Vec::new();
    let documents = yaml::read_documents(input).map_err(|source| RenderError::Yaml { source })?;
    for (i, value) in documents.into_iter().enumerate() {
        let doc_no = i + 1;
        if value.is_null() {
            continue;
        }
        let (api_version, kind) = (value["apiVersion"].as_str(), value["kind"].as_str());
        if api_version != Some("keelson.dev/v1alpha1") || kind != Some("Application") {
            return Err(RenderError::NotAnApplication {
                doc: doc_no,
                found: format!(
                    "apiVersion {}, kind {}",
                    api_version.unwrap_or("(none)"),
                    kind.unwrap_or("(none)")
                ),
            });
        }
        let name = value["metadata"]["name"]
            .as_str()
            .ok_or(RenderError::MissingName { doc: doc_no })?;
        let namespace = match (value["metadata"]["namespace"].as_str(), namespace) {
            (Some(found), Some(wanted)) if found != wanted => {
                return Err(RenderError::NamespaceMismatch {
                    doc: doc_no,
                    found: found.to_string(),
                    wanted: wanted.to_string(),
                });
            }
            (Some(ns), _) | (None, Some(ns)) => ns,
            (None, None) => "default",
        };
        let spec = value.get("spec").cloned().unwrap_or(Value::Null);
        let model =
            validate_value(name, namespace, &spec).map_err(|source| RenderError::Invalid {
                name: name.to_string(),
                source,
            })?;
        let uid = value["metadata"]["uid"].as_str().unwrap_or(PLACEHOLDER_UID);
        let owner = build::labels::owner_reference(name, uid);
        let new_creds: BTreeMap<String, Credentials> = model
            .databases
            .iter()
            .map(|d| (d.spec.name.clone(), creds(&d.spec.name)))
            .collect();
        out.extend(build::build(&model, &owner, caps, &new_creds).to_values());
    }
    Ok(out)
}

/// Objects as a multi-document YAML stream that kubectl reads back to the same values.
pub fn to_yaml_stream(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&to_yaml(o));
    }
    out
}

/// One value as YAML for kubectl (YAML 1.1 readers): ambiguous strings quoted, no block scalars.
pub fn to_yaml(value: &Value) -> String {
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    serde_saphyr::to_string_with_options(value, options).expect("JSON values serialize to YAML")
}

const GENERATED: &str =
    "# Generated by `keelson crd` from operator/src/api/v1alpha1.rs. Do not edit.\n";

/// The CRD as YAML, as kept in crds/.
pub fn crd_yaml() -> String {
    format!(
        "{GENERATED}{}",
        serde_saphyr::to_string(&Application::crd()).expect("CRD serializes")
    )
}

/// The CRD as the Helm chart's template: installed unless `crds.install=false`, annotated
/// `helm.sh/resource-policy: keep` while `crds.keep` is true, so `helm uninstall` never deletes
/// every Application with it.
pub fn crd_chart_template() -> String {
    let mut crd = serde_json::to_value(Application::crd()).expect("CRD serializes");
    crd["metadata"]["labels"] = serde_json::json!({"app.kubernetes.io/part-of": "keelson"});
    let body = serde_saphyr::to_string(&crd).expect("CRD serializes");
    let header =
        "# Generated by `keelson crd --chart` from operator/src/api/v1alpha1.rs. Do not edit.\n";
    let mut out = format!("{header}{{{{- if .Values.crds.install }}}}\n");
    for line in body.lines() {
        out.push_str(line);
        out.push('\n');
        if line == "metadata:" {
            out.push_str("  {{- if .Values.crds.keep }}\n");
            out.push_str("  annotations:\n    helm.sh/resource-policy: keep\n");
            out.push_str("  {{- end }}\n");
        }
    }
    out.push_str("{{- end }}\n");
    out
}
