//! Where the Kubernetes API is and how to authenticate to it: from inside a pod (the service
//! account) or from a kubeconfig, the two ways `kubectl` and client-go find a cluster.
//!
//! - **In-cluster**: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, verified
//!   against the service account's `ca.crt`, with its `token` as the bearer token (re-read on
//!   every call: the kubelet rotates projected tokens) and its `namespace` as the default.
//! - **kubeconfig**: the files in `$KUBECONFIG` (colon-separated, merged as kubectl merges them:
//!   the first file naming a cluster, user or context wins, and the first `current-context` set
//!   wins), else `~/.kube/config`. The context (the current one unless named) gives the server,
//!   the CA (`certificate-authority` or `-data`), the user's credentials (`token`, `tokenFile`,
//!   `client-certificate`/`client-key` or their `-data`, or an `exec` credential plugin such as
//!   `aws eks get-token` or `gke-gcloud-auth-plugin`) and the namespace. Relative paths are
//!   relative to the file that names them.
//!
//! Refused with a clear error rather than half-supported: `insecure-skip-tls-verify` (give the
//! cluster's CA instead), `tls-server-name`, `proxy-url`, basic auth, the removed
//! `auth-provider` plugins, and exec plugins that return a client certificate instead of a token.

use crate::engine::EngineError;
use crate::engine::tls::{Identity, Roots, TlsSettings};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The service account's files inside a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A resolved way to reach one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeConnection {
    /// API server base URL, e.g. `https://10.0.0.1:443`.
    pub server: String,
    /// What the client trusts and presents.
    pub tls: TlsSettings,
    /// The bearer credentials sent with every request.
    pub credentials: Credentials,
    /// The namespace the context or the pod names, if any.
    pub namespace: Option<String>,
    /// Where this came from, for errors and logs (`in-cluster`, `kubeconfig F, context C`).
    pub source: String,
}

/// Bearer credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None (client certificates, or a proxy that adds its own).
    None,
    /// A fixed token.
    Token(String),
    /// A file holding the token, read at every request (rotated tokens).
    TokenFile(PathBuf),
    /// A credential plugin that prints an `ExecCredential`.
    Exec(ExecPlugin),
}

/// A kubeconfig `exec` credential plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlugin {
    /// `client.authentication.k8s.io/v1` or `v1beta1`.
    pub api_version: String,
    /// The command (a relative path with a `/` is relative to the kubeconfig's folder).
    pub command: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

/// What an exec plugin printed (the parts used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecToken {
    /// The bearer token.
    pub token: String,
    /// When it expires (Unix seconds), if the plugin said.
    pub expires_unix: Option<i64>,
}

impl ExecPlugin {
    /// The environment variable client-go sets for the plugin.
    pub fn exec_info(&self) -> String {
        serde_json::json!({
            "apiVersion": self.api_version,
            "kind": "ExecCredential",
            "spec": { "interactive": false },
        })
        .to_string()
    }

    /// Parses the plugin's standard output.
    pub fn parse_output(&self, stdout: &str) -> Result<ExecToken, EngineError> {
        #[derive(Deserialize)]
        struct Out {
            status: Option<Status>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Status {
            token: Option<String>,
            expiration_timestamp: Option<String>,
            client_certificate_data: Option<String>,
        }
        let cmd = self.command.display();
        let out: Out = serde_json::from_str(stdout).map_err(|e| {
            EngineError::Other(format!(
                "credential plugin {cmd}: its output is not an ExecCredential: {e}"
            ))
        })?;
        let status = out.status.ok_or_else(|| {
            EngineError::Other(format!(
                "credential plugin {cmd}: the ExecCredential has no status"
            ))
        })?;
        let token = match (status.token, status.client_certificate_data) {
            (Some(t), _) if !t.is_empty() => t,
            (_, Some(_)) => {
                return Err(EngineError::Other(format!(
                    "credential plugin {cmd} returned a client certificate; only token plugins are supported"
                )));
            }
            _ => {
                return Err(EngineError::Other(format!(
                    "credential plugin {cmd}: the ExecCredential has no token"
                )));
            }
        };
        let expires_unix = match status.expiration_timestamp {
            None => None,
            Some(ts) => Some(
                chrono::DateTime::parse_from_rfc3339(&ts)
                    .map_err(|e| {
                        EngineError::Other(format!(
                            "credential plugin {cmd}: expirationTimestamp {ts:?}: {e}"
                        ))
                    })?
                    .timestamp(),
            ),
        };
        Ok(ExecToken {
            token,
            expires_unix,
        })
    }
}

fn err(msg: String) -> EngineError {
    EngineError::Other(msg)
}

/// The in-cluster connection: `env` reads environment variables (normally `std::env::var`),
/// `sa_dir` is the service account's folder (normally [`SERVICE_ACCOUNT_DIR`]).
pub fn in_cluster(
    env: impl Fn(&str) -> Option<String>,
    sa_dir: &Path,
) -> Result<KubeConnection, EngineError> {
    let host = env("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty());
    let port = env("KUBERNETES_SERVICE_PORT").filter(|p| !p.is_empty());
    let (Some(host), Some(port)) = (host, port) else {
        return Err(err(
            "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod?)".into(),
        ));
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // IPv6
    } else {
        host
    };
    let ca_path = sa_dir.join("ca.crt");
    let ca = std::fs::read(&ca_path).map_err(|e| {
        err(format!(
            "in-cluster: cannot read {}: {e}",
            ca_path.display()
        ))
    })?;
    let token = sa_dir.join("token");
    if !token.is_file() {
        return Err(err(format!(
            "in-cluster: no service-account token at {}",
            token.display()
        )));
    }
    let namespace = std::fs::read_to_string(sa_dir.join("namespace"))
        .ok()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    Ok(KubeConnection {
        server: format!("https://{host}:{port}"),
        tls: TlsSettings {
            roots: Roots::Pem(ca),
            identity: None,
        },
        credentials: Credentials::TokenFile(token),
        namespace,
        source: "in-cluster".into(),
    })
}

/// The kubeconfig files kubectl would read: `$KUBECONFIG` split on `:`, else `~/.kube/config`.
pub fn default_kubeconfig_paths(env: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    if let Some(list) = env("KUBECONFIG").filter(|l| !l.is_empty()) {
        return list
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
    }
    match env("HOME") {
        Some(home) => vec![Path::new(&home).join(".kube").join("config")],
        None => vec![PathBuf::from(".kube/config")],
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    current_context: Option<String>,
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    #[serde(default)]
    item: Option<T>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    #[serde(default)]
    server: Option<String>,
    #[serde(default)]
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    tls_server_name: Option<String>,
    #[serde(default)]
    proxy_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    auth_provider: Option<serde_json::Value>,
    #[serde(default)]
    exec: Option<Exec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Exec {
    #[serde(default)]
    api_version: Option<String>,
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Option<Vec<EnvVar>>,
}

#[derive(Debug, Clone, Deserialize)]
struct EnvVar {
    name: String,
    value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Context {
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// One entry with the folder of the file that named it (for relative paths).
struct Entry<T> {
    item: T,
    dir: PathBuf,
    file: PathBuf,
}

#[derive(Default)]
struct Merged {
    current_context: Option<String>,
    clusters: BTreeMap<String, Entry<Cluster>>,
    users: BTreeMap<String, Entry<User>>,
    contexts: BTreeMap<String, Entry<Context>>,
}

fn merge_into<T>(map: &mut BTreeMap<String, Entry<T>>, items: Vec<Named<T>>, file: &Path)
where
    T: Default,
{
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    for n in items {
        map.entry(n.name).or_insert_with(|| Entry {
            item: n.item.unwrap_or_default(),
            dir: dir.clone(),
            file: file.to_path_buf(),
        });
    }
}

fn resolve(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn data_or_file(
    data: &Option<String>,
    file: &Option<PathBuf>,
    dir: &Path,
    what: &str,
    origin: &Path,
) -> Result<Option<Vec<u8>>, EngineError> {
    if let Some(d) = data.as_ref().filter(|d| !d.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|e| {
                err(format!(
                    "kubeconfig {}: {what}-data is not base64: {e}",
                    origin.display()
                ))
            })?;
        return Ok(Some(bytes));
    }
    match file.as_ref().filter(|f| !f.as_os_str().is_empty()) {
        None => Ok(None),
        Some(f) => {
            let path = resolve(dir, f);
            std::fs::read(&path).map(Some).map_err(|e| {
                err(format!(
                    "kubeconfig {}: {what} {}: {e}",
                    origin.display(),
                    path.display()
                ))
            })
        }
    }
}

/// Parses one kubeconfig document (for tests and tools; [`load_kubeconfig`] reads files).
fn parse(text: &str, file: &Path) -> Result<File, EngineError> {
    if text.trim().is_empty() {
        return Ok(File::default());
    }
    serde_saphyr::from_str(text).map_err(|e| {
        err(format!(
            "kubeconfig {}: not a kubeconfig: {e}",
            file.display()
        ))
    })
}

/// Resolves `context` (or the current context) from the kubeconfig `files`, merged in order.
/// A file that does not exist is skipped, as kubectl skips it; none existing is an error.
pub fn load_kubeconfig(
    files: &[PathBuf],
    context: Option<&str>,
) -> Result<KubeConnection, EngineError> {
    let mut merged = Merged::default();
    let mut read_any = false;
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(format!("kubeconfig {}: {e}", f.display()))),
        };
        read_any = true;
        let doc = parse(&text, f)?;
        if merged.current_context.is_none() {
            merged.current_context = doc.current_context.filter(|c| !c.is_empty());
        }
        merge_into(&mut merged.clusters, doc.clusters, f);
        merge_into(&mut merged.users, doc.users, f);
        merge_into(&mut merged.contexts, doc.contexts, f);
    }
    let shown = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    if !read_any {
        return Err(err(format!("kubeconfig: none of {shown} exists")));
    }
    let name = match context {
        Some(c) => c.to_string(),
        None => merged.current_context.clone().ok_or_else(|| {
            err(format!(
                "kubeconfig {shown}: no current-context; name one with `context`"
            ))
        })?,
    };
    let ctx = merged.contexts.get(&name).ok_or_else(|| {
        err(format!(
            "kubeconfig {shown}: context {name:?} not found (contexts: {})",
            merged
                .contexts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let cluster_name = ctx.item.cluster.clone().unwrap_or_default();
    let cluster = merged.clusters.get(&cluster_name).ok_or_else(|| {
        err(format!(
            "kubeconfig {}: context {name:?} names cluster {cluster_name:?}, which is not defined",
            ctx.file.display()
        ))
    })?;
    let c = &cluster.item;
    let origin = &cluster.file;
    let server = c.server.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
        err(format!(
            "kubeconfig {}: cluster {cluster_name:?} has no server",
            origin.display()
        ))
    })?;
    let refuse = |what: &str| {
        err(format!(
            "kubeconfig {}: cluster {cluster_name:?} sets {what}, which this host does not support",
            origin.display()
        ))
    };
    if c.insecure_skip_tls_verify {
        return Err(refuse(
            "insecure-skip-tls-verify (TLS is always verified: give certificate-authority)",
        ));
    }
    if c.tls_server_name.is_some() {
        return Err(refuse("tls-server-name"));
    }
    if c.proxy_url.is_some() {
        return Err(refuse("proxy-url"));
    }
    let roots = match data_or_file(
        &c.certificate_authority_data,
        &c.certificate_authority,
        &cluster.dir,
        "certificate-authority",
        origin,
    )? {
        Some(pem) => Roots::Pem(pem),
        None => Roots::System,
    };

    let (identity, credentials) = match ctx.item.user.as_deref().filter(|u| !u.is_empty()) {
        None => (None, Credentials::None),
        Some(user_name) => {
            let user = merged.users.get(user_name).ok_or_else(|| {
                err(format!(
                    "kubeconfig {}: context {name:?} names user {user_name:?}, which is not defined",
                    ctx.file.display()
                ))
            })?;
            user_credentials(user, user_name)?
        }
    };
    Ok(KubeConnection {
        server: server.trim_end_matches('/').to_string(),
        tls: TlsSettings { roots, identity },
        credentials,
        namespace: ctx.item.namespace.clone().filter(|n| !n.is_empty()),
        source: format!("kubeconfig {shown}, context {name}"),
    })
}

fn user_credentials(
    user: &Entry<User>,
    user_name: &str,
) -> Result<(Option<Identity>, Credentials), EngineError> {
    let u = &user.item;
    let origin = &user.file;
    let refuse = |what: &str| {
        err(format!(
            "kubeconfig {}: user {user_name:?} uses {what}, which this host does not support",
            origin.display()
        ))
    };
    if u.auth_provider.is_some() {
        return Err(refuse(
            "an auth-provider plugin (removed from Kubernetes; use its exec plugin)",
        ));
    }
    if u.username.is_some() {
        return Err(refuse("basic auth"));
    }
    let cert = data_or_file(
        &u.client_certificate_data,
        &u.client_certificate,
        &user.dir,
        "client-certificate",
        origin,
    )?;
    let key = data_or_file(
        &u.client_key_data,
        &u.client_key,
        &user.dir,
        "client-key",
        origin,
    )?;
    let identity = match (cert, key) {
        (Some(cert_pem), Some(key_pem)) => Some(Identity { cert_pem, key_pem }),
        (None, None) => None,
        _ => {
            return Err(err(format!(
                "kubeconfig {}: user {user_name:?} has a client certificate or key without the other",
                origin.display()
            )));
        }
    };
    let credentials = if let Some(t) = u.token.as_ref().filter(|t| !t.is_empty()) {
        Credentials::Token(t.clone())
    } else if let Some(f) = u.token_file.as_ref().filter(|f| !f.as_os_str().is_empty()) {
        Credentials::TokenFile(resolve(&user.dir, f))
    } else if let Some(x) = &u.exec {
        let command = PathBuf::from(&x.command);
        let command = if command.is_relative() && x.command.contains('/') {
            user.dir.join(command)
        } else {
            command
        };
        Credentials::Exec(ExecPlugin {
            api_version: x
                .api_version
                .clone()
                .unwrap_or_else(|| "client.authentication.k8s.io/v1".into()),
            command,
            args: x.args.clone(),
            env: x
                .env
                .iter()
                .flatten()
                .map(|v| (v.name.clone(), v.value.clone()))
                .collect(),
        })
    } else {
        Credentials::None
    };
    Ok((identity, credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_current_context_gives_server_ca_token_and_namespace() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "ca.pem", PEM);
        let cfg = write(
            d.path(),
            "config",
            r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: east
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority: ca.pem
users:
- name: ops
  user:
    token: abc
contexts:
- name: prod
  context:
    cluster: east
    user: ops
    namespace: streaming
- name: other
  context:
    cluster: east
"#,
        );
        let c = load_kubeconfig(&[cfg], None).unwrap();
        assert_eq!(c.server, "https://10.0.0.1:6443");
        assert_eq!(c.tls.roots, Roots::Pem(PEM.as_bytes().to_vec()));
        assert_eq!(c.credentials, Credentials::Token("abc".into()));
        assert_eq!(c.namespace.as_deref(), Some("streaming"));
        assert!(c.source.contains("context prod"), "{}", c.source);
    }

    #[test]
    fn data_fields_are_base64_and_a_named_context_wins() {
        let d = tempfile::tempdir().unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let cfg = write(
            d.path(),
            "config",
            &format!(
                r#"
current-context: a
clusters:
- name: c
  cluster:
    server: https://k8s.example:443
    certificate-authority-data: {}
users:
- name: u
  user:
    client-certificate-data: {}
    client-key-data: {}
contexts:
- name: a
  context: {{cluster: c}}
- name: b
  context: {{cluster: c, user: u}}
"#,
                b64(PEM),
                b64("CERT"),
                b64("KEY")
            ),
        );
        let c = load_kubeconfig(&[cfg], Some("b")).unwrap();
        let id = c.tls.identity.unwrap();
        assert_eq!(
            (id.cert_pem, id.key_pem),
            (b"CERT".to_vec(), b"KEY".to_vec())
        );
        assert_eq!(c.credentials, Credentials::None);
        assert_eq!(c.namespace, None);
    }

    #[test]
    fn files_merge_first_wins_and_missing_files_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let a = write(
            d.path(),
            "a",
            "clusters:\n- name: c\n  cluster: {server: 'https://first'}\n",
        );
        let b = write(
            d.path(),
            "b",
            "current-context: x\nclusters:\n- name: c\n  cluster: {server: 'https://second'}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n  user: {tokenFile: tok}\n",
        );
        let c = load_kubeconfig(&[d.path().join("missing"), a, b], None).unwrap();
        assert_eq!(c.server, "https://first");
        assert_eq!(c.tls.roots, Roots::System);
        assert_eq!(c.credentials, Credentials::TokenFile(d.path().join("tok")));
    }

    #[test]
    fn exec_plugins_are_resolved_and_their_output_parsed() {
        let d = tempfile::tempdir().unwrap();
        let cfg = write(
            d.path(),
            "config",
            r#"
current-context: x
clusters: [{name: c, cluster: {server: "https://s"}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: ./bin/get-token
      args: [--cluster, east]
      env: [{name: REGION, value: eu}]
"#,
        );
        let c = load_kubeconfig(&[cfg], None).unwrap();
        let Credentials::Exec(x) = c.credentials else {
            panic!("{:?}", c.credentials)
        };
        assert_eq!(x.command, d.path().join("./bin/get-token"));
        assert_eq!(x.args, ["--cluster", "east"]);
        assert_eq!(x.env, [("REGION".to_string(), "eu".to_string())]);
        assert!(x.exec_info().contains("v1beta1"));
        let t = x
            .parse_output(r#"{"kind":"ExecCredential","status":{"token":"t0","expirationTimestamp":"2026-12-02T08:00:00Z"}}"#)
            .unwrap();
        assert_eq!(t.token, "t0");
        assert_eq!(t.expires_unix, Some(1_796_198_400));
        for bad in [
            "not json",
            r#"{"kind":"ExecCredential"}"#,
            r#"{"status":{"clientCertificateData":"x"}}"#,
            r#"{"status":{"token":"t","expirationTimestamp":"tomorrow"}}"#,
        ] {
            assert!(x.parse_output(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_is_not_supported_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            (
                "cluster: {server: 'https://s', insecure-skip-tls-verify: true}",
                "user: {token: t}",
                "insecure-skip-tls-verify",
            ),
            (
                "cluster: {server: 'https://s', tls-server-name: x}",
                "user: {token: t}",
                "tls-server-name",
            ),
            (
                "cluster: {server: 'https://s'}",
                "user: {username: a, password: b}",
                "basic auth",
            ),
            (
                "cluster: {server: 'https://s'}",
                "user: {auth-provider: {name: gcp}}",
                "auth-provider",
            ),
            (
                "cluster: {server: 'https://s'}",
                "user: {client-key-data: eA==}",
                "without the other",
            ),
            (
                "cluster: {server: 'https://s', certificate-authority-data: '%%%'}",
                "user: {token: t}",
                "not base64",
            ),
            (
                "cluster: {server: 'https://s', certificate-authority: nowhere.pem}",
                "user: {token: t}",
                "nowhere.pem",
            ),
            ("cluster: {}", "user: {token: t}", "no server"),
        ];
        for (cluster, user, want) in cases {
            let cfg = write(
                d.path(),
                "config",
                &format!(
                    "current-context: x\nclusters:\n- name: c\n  {cluster}\nusers:\n- name: u\n  {user}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n"
                ),
            );
            let e = load_kubeconfig(&[cfg], None).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn missing_contexts_and_files_and_bad_yaml_say_what_is_wrong() {
        let d = tempfile::tempdir().unwrap();
        let e = load_kubeconfig(&[d.path().join("none")], None).unwrap_err();
        assert!(e.to_string().contains("none of"), "{e}");
        let cfg = write(
            d.path(),
            "config",
            "contexts:\n- name: a\n  context: {cluster: c}\n",
        );
        let e = load_kubeconfig(std::slice::from_ref(&cfg), None).unwrap_err();
        assert!(e.to_string().contains("no current-context"), "{e}");
        let e = load_kubeconfig(std::slice::from_ref(&cfg), Some("zz")).unwrap_err();
        assert!(
            e.to_string().contains("\"zz\" not found (contexts: a)"),
            "{e}"
        );
        let e = load_kubeconfig(std::slice::from_ref(&cfg), Some("a")).unwrap_err();
        assert!(
            e.to_string()
                .contains("cluster \"c\", which is not defined"),
            "{e}"
        );
        let bad = write(d.path(), "bad", "clusters: [unclosed\n");
        let e = load_kubeconfig(&[bad], None).unwrap_err();
        assert!(e.to_string().contains("not a kubeconfig"), "{e}");
    }

    #[test]
    fn in_cluster_reads_the_service_account() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "ca.crt", PEM);
        write(d.path(), "token", "tok\n");
        write(d.path(), "namespace", "streaming\n");
        let env = |k: &str| match k {
            "KUBERNETES_SERVICE_HOST" => Some("fd00::1".to_string()),
            "KUBERNETES_SERVICE_PORT" => Some("443".to_string()),
            _ => None,
        };
        let c = in_cluster(env, d.path()).unwrap();
        assert_eq!(c.server, "https://[fd00::1]:443");
        assert_eq!(
            c.credentials,
            Credentials::TokenFile(d.path().join("token"))
        );
        assert_eq!(c.namespace.as_deref(), Some("streaming"));
        let e = in_cluster(|_| None, d.path()).unwrap_err();
        assert!(e.to_string().contains("not in a pod"), "{e}");
        let e = in_cluster(env, &d.path().join("nowhere")).unwrap_err();
        assert!(e.to_string().contains("ca.crt"), "{e}");
    }

    #[test]
    fn kubeconfig_paths_follow_kubectl() {
        let env = |k: &str| (k == "KUBECONFIG").then(|| "/a:/b::".to_string());
        assert_eq!(
            default_kubeconfig_paths(env),
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
        let env = |k: &str| (k == "HOME").then(|| "/home/x".to_string());
        assert_eq!(
            default_kubeconfig_paths(env),
            [PathBuf::from("/home/x/.kube/config")]
        );
    }
}
