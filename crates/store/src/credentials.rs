//! Where the store is and who is asking: the endpoint, the region and the
//! keys, from the environment as the AWS tools read them, else from the
//! shared files (`~/.aws/credentials`, `~/.aws/config`, profile
//! `AWS_PROFILE` or `default`). The keys are never printed.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// An S3 (or S3-compatible) service and the keys to reach it.
#[derive(Clone, Default, PartialEq)]
pub struct Credentials {
    /// The service's URL (`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, or
    /// `endpoint_url` in the profile); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The region (`AWS_REGION` / `AWS_DEFAULT_REGION`, the profile's
    /// `region`, else `us-east-1`).
    pub region: String,
    /// The access key id and secret, if any were found.
    pub(crate) keys: Option<(String, String)>,
    /// A session token, with temporary keys.
    pub(crate) token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("keys", &self.keys.as_ref().map(|_| "(set, not shown)"))
            .finish()
    }
}

impl Credentials {
    /// Read from this process's environment and the user's AWS files.
    pub fn from_environment() -> Result<Credentials> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Credentials::read(|name| std::env::var(name).ok().filter(|v| !v.is_empty()), home.as_deref())
    }

    /// Read through `env` (a variable's value) and the files under `home`.
    pub fn read(env: impl Fn(&str) -> Option<String>, home: Option<&Path>) -> Result<Credentials> {
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let file =
            |variable: &str, name: &str| env(variable).map(PathBuf::from).or(home.map(|h| h.join(".aws").join(name)));
        let shared = read_profile(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), &profile)?;
        let config_profile = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
        let config = read_profile(file("AWS_CONFIG_FILE", "config"), &config_profile)?;
        let from_files = |key: &str| shared.get(key).or(config.get(key)).cloned();
        let keys = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (Some(_), None) | (None, Some(_)) => {
                return Err(StoreError::Invalid(
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: only one is set; set both, or neither to use ~/.aws/credentials".into(),
                ))
            }
            (None, None) => from_files("aws_access_key_id").zip(from_files("aws_secret_access_key")),
        };
        let token =
            if env("AWS_ACCESS_KEY_ID").is_some() { env("AWS_SESSION_TOKEN") } else { from_files("aws_session_token") };
        Ok(Credentials {
            endpoint: env("AWS_ENDPOINT_URL_S3").or(env("AWS_ENDPOINT_URL")).or(from_files("endpoint_url")),
            region: env("AWS_REGION")
                .or(env("AWS_DEFAULT_REGION"))
                .or(from_files("region"))
                .unwrap_or("us-east-1".into()),
            keys,
            token,
        })
    }
}

/// The `key = value` lines of section `[profile]` of an INI file, if the
/// file exists.
fn read_profile(path: Option<PathBuf>, profile: &str) -> Result<std::collections::HashMap<String, String>> {
    let mut values = std::collections::HashMap::new();
    let Some(path) = path.filter(|p| p.is_file()) else { return Ok(values) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| StoreError::Invalid(format!("{}: cannot read it: {e}", path.display())))?;
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == profile;
        } else if let Some((key, value)) = line.split_once('=').filter(|_| inside) {
            values.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_environment_wins_over_the_files() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = FILEID\naws_secret_access_key = FILESECRET\n[lab]\naws_access_key_id=LABID\naws_secret_access_key=LABSECRET\n",
        )
        .unwrap();
        std::fs::write(
            home.path().join(".aws/config"),
            "[profile lab]\nregion = eu-west-3\nendpoint_url = http://minio:9000\n",
        )
        .unwrap();
        let from_files = Credentials::read(env(&[]), Some(home.path())).unwrap();
        assert_eq!(from_files.keys, Some(("FILEID".into(), "FILESECRET".into())));
        assert_eq!((from_files.region.as_str(), from_files.endpoint.as_deref()), ("us-east-1", None));
        let lab = Credentials::read(env(&[("AWS_PROFILE", "lab")]), Some(home.path())).unwrap();
        assert_eq!(lab.keys, Some(("LABID".into(), "LABSECRET".into())));
        assert_eq!((lab.region.as_str(), lab.endpoint.as_deref()), ("eu-west-3", Some("http://minio:9000")));
        let vars = [("AWS_ACCESS_KEY_ID", "ENVID"), ("AWS_SECRET_ACCESS_KEY", "ENVSECRET"), ("AWS_REGION", "x-1")];
        let from_env = Credentials::read(env(&vars), Some(home.path())).unwrap();
        assert_eq!((from_env.keys.clone().unwrap().0.as_str(), from_env.region.as_str()), ("ENVID", "x-1"));
        assert!(!format!("{from_env:?}").contains("ENVSECRET"), "the secret is never printed");
    }

    #[test]
    fn half_a_key_pair_is_an_error() {
        let err = Credentials::read(env(&[("AWS_ACCESS_KEY_ID", "ID")]), None).unwrap_err().to_string();
        assert!(err.contains("only one is set"), "{err}");
    }
}
