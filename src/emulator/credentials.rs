//! `Keyring`: the access keys the emulator knows: static keys registered in the config and
//! the temporary `ASIA…` credentials it issues (AssumeRole, IMDS).
//!
//! It stores and looks up identities; it does not decide whether a request is allowed
//! (`auth.rs`) nor speak any protocol (`sts.rs`, `imds.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Where issued credentials came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    AssumeRole,
    Imds,
}

/// One set of temporary credentials the emulator issued.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    #[serde(serialize_with = "ser_time")]
    pub expiration: SystemTime,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// `AROA…:SESSION`.
    pub user_id: String,
    pub account: String,
    pub origin: Origin,
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// What a signing access key resolves to.
#[derive(Clone, Debug)]
pub enum Identity {
    Issued(Arc<IssuedCredentials>),
    /// A registered static key with its secret.
    Static(Arc<str>),
    /// A key the emulator has never seen; its secret is unknown so it can't be verified.
    Unknown,
}

#[derive(Debug, Default)]
pub struct Keyring {
    statics: HashMap<String, Arc<str>>,
    /// Read on every signed request, written only when credentials are issued.
    issued: RwLock<HashMap<String, Arc<IssuedCredentials>>>,
    /// Issue order, for `all_issued` (tests grep outputs for leaked secrets).
    order: Mutex<Vec<Arc<IssuedCredentials>>>,
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(rng: &mut fastrand::Rng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[rng.usize(..alphabet.len())] as char)
        .collect()
}

impl Keyring {
    pub fn new(static_keys: &[(String, String)]) -> Keyring {
        Keyring {
            statics: static_keys
                .iter()
                .map(|(k, s)| (k.clone(), Arc::from(s.as_str())))
                .collect(),
            ..Keyring::default()
        }
    }

    pub fn lookup(&self, access_key_id: &str) -> Identity {
        if let Some(c) = read(&self.issued).get(access_key_id) {
            return Identity::Issued(c.clone());
        }
        match self.statics.get(access_key_id) {
            Some(s) => Identity::Static(s.clone()),
            None => Identity::Unknown,
        }
    }

    /// Issues fresh credentials for `role` / `session` in `account`, valid for `ttl`.
    pub fn issue(
        &self,
        account: &str,
        role: &str,
        session: &str,
        ttl: Duration,
        origin: Origin,
    ) -> Arc<IssuedCredentials> {
        // Credentials are secrets, not test fixtures: they are never derived from the
        // fault-injection seed.
        let mut rng = fastrand::Rng::new();
        let role_id = format!("AROA{}", random_string(&mut rng, KEY_ALPHABET, 17));
        let creds = Arc::new(IssuedCredentials {
            access_key_id: format!("ASIA{}", random_string(&mut rng, KEY_ALPHABET, 16)),
            secret_access_key: random_string(&mut rng, SECRET_ALPHABET, 40),
            session_token: format!(
                "IQoJb3JpZ2luX2VjE{}",
                random_string(&mut rng, SECRET_ALPHABET, 300)
            ),
            expiration: SystemTime::now() + ttl,
            arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session}"),
            user_id: format!("{role_id}:{session}"),
            account: account.to_owned(),
            origin,
        });
        write(&self.issued).insert(creds.access_key_id.clone(), creds.clone());
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(creds.clone());
        creds
    }

    /// Every credential issued so far, oldest first.
    pub fn all_issued(&self) -> Vec<IssuedCredentials> {
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| (**c).clone())
            .collect()
    }
}

// A poisoned lock only means a panic elsewhere while inserting into a map; the map is intact.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC), as STS and IMDS write timestamps.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_808_528);
        assert_eq!(rfc3339(t), "2026-11-27T19:42:08Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn issue_then_lookup() {
        let k = Keyring::new(&[("AKIDSTATIC".into(), "s3cret".into())]);
        assert!(matches!(k.lookup("AKIDSTATIC"), Identity::Static(_)));
        assert!(matches!(k.lookup("nope"), Identity::Unknown));
        let c = k.issue(
            "123456789012",
            "R",
            "S",
            Duration::from_secs(60),
            Origin::AssumeRole,
        );
        assert!(c.access_key_id.starts_with("ASIA") && c.access_key_id.len() == 20);
        assert!(matches!(k.lookup(&c.access_key_id), Identity::Issued(_)));
        assert_eq!(c.arn, "arn:aws:sts::123456789012:assumed-role/R/S");
        assert_eq!(k.all_issued().len(), 1);
    }
}
