//! `SigV4`: parsing an `AWS4-HMAC-SHA256` Authorization header and recomputing its signature.
//!
//! Pure crypto and canonicalisation, following the wire doc §9 (Bedrock's canonical URI is
//! the raw path URI-encoded a second time). Which keys must verify, and what error a failure
//! becomes, is `auth.rs`'s decision.

use hmac::{Hmac, Mac};
use http::request::Parts;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
pub struct SigV4<'a> {
    pub access_key: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Everything except `A-Za-z0-9-._~` is encoded, as SigV4 requires.
const SIGV4_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl<'a> SigV4<'a> {
    /// Parses the header value; `None` if it is not a well-formed SigV4 header.
    pub fn parse(value: &'a str) -> Option<SigV4<'a>> {
        let rest = value.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            match k {
                "Credential" => credential = Some(v),
                "SignedHeaders" => signed_headers = Some(v),
                "Signature" => signature = Some(v),
                _ => {}
            }
        }
        let mut scope = credential?.split('/');
        let sig = SigV4 {
            access_key: scope.next()?,
            date: scope.next()?,
            region: scope.next()?,
            service: scope.next()?,
            signed_headers: signed_headers?,
            signature: signature?,
        };
        (scope.next()? == "aws4_request" && !sig.access_key.is_empty()).then_some(sig)
    }

    /// Whether the signature matches one computed with `secret` over this request.
    /// `double_encode` selects Bedrock's canonical URI (raw path encoded again).
    pub fn verify(&self, secret: &str, parts: &Parts, body: &[u8], double_encode: bool) -> bool {
        let (method, raw_path, raw_query, headers) = (
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
        );
        let Some(amz_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let mut canonical = String::with_capacity(512);
        canonical.push_str(method);
        canonical.push('\n');
        if double_encode {
            for (i, seg) in raw_path.split('/').enumerate() {
                if i > 0 {
                    canonical.push('/');
                }
                canonical.extend(utf8_percent_encode(seg, SIGV4_SET));
            }
        } else {
            canonical.push_str(raw_path);
        }
        canonical.push('\n');
        if let Some(q) = raw_query.filter(|q| !q.is_empty()) {
            let mut pairs: Vec<(&str, &str)> = q
                .split('&')
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect();
            pairs.sort_unstable();
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    canonical.push('&');
                }
                canonical.push_str(k);
                canonical.push('=');
                canonical.push_str(v);
            }
        }
        canonical.push('\n');
        for name in self.signed_headers.split(';') {
            canonical.push_str(name);
            canonical.push(':');
            for (i, v) in headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    canonical.push(',');
                }
                let v = String::from_utf8_lossy(v.as_bytes());
                for (j, word) in v.split_whitespace().enumerate() {
                    if j > 0 {
                        canonical.push(' ');
                    }
                    canonical.push_str(word);
                }
            }
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(self.signed_headers);
        canonical.push('\n');
        canonical.push_str(&hex::encode(Sha256::digest(body)));

        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
            self.date,
            self.region,
            self.service,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{secret}").as_bytes(), self.date.as_bytes());
        for part in [self.region, self.service, "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        constant_time_eq(expected.as_bytes(), self.signature.as_bytes())
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sdk_header() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDSOURCE/20261127/ap-northeast-2/sts/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-date;x-amz-user-agent, Signature=abc123";
        let s = SigV4::parse(h).unwrap();
        assert_eq!(s.access_key, "AKIDSOURCE");
        assert_eq!(s.region, "ap-northeast-2");
        assert_eq!(s.service, "sts");
        assert_eq!(s.signature, "abc123");
        assert!(SigV4::parse("Bearer x").is_none());
        assert!(SigV4::parse("AWS4-HMAC-SHA256 Credential=A/B/C").is_none());
    }

    /// The AWS SigV4 test-suite vector "get-vanilla".
    #[test]
    fn verifies_aws_reference_vector() {
        let (parts, ()) = http::Request::get("/")
            .header("host", "example.amazonaws.com")
            .header("x-amz-date", "20150830T123600Z")
            .body(())
            .unwrap()
            .into_parts();
        let s = SigV4 {
            access_key: "AKIDEXAMPLE",
            date: "20150830",
            region: "us-east-1",
            service: "service",
            signed_headers: "host;x-amz-date",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        };
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert!(s.verify(secret, &parts, b"", false));
        assert!(!s.verify("wrong", &parts, b"", false));
    }
}
