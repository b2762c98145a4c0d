//! COS request signature (q-sign-algorithm=sha1), exactly as `docs/COS-NOTES.md` describes it.
//!
//! The signer is a pure function of its inputs so that both the client (signing) and the local
//! server (verifying) use the same code, and so the published test vectors can pin it down.
//! `path` is always the *decoded* key with a leading `/` (or `/` for bucket operations), no matter
//! how the request is addressed on the wire.

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

use super::encode::encode_strict;

type HmacSha1 = Hmac<Sha1>;

/// Everything the signature covers.
pub struct SignInput<'a> {
    pub method: &'a str,
    /// Decoded path: `/` + key.
    pub path: &'a str,
    /// Decoded query parameters (valueless ones have value `""`).
    pub params: &'a [(String, String)],
    /// Headers to sign (name, value) — the caller picks which.
    pub headers: &'a [(String, String)],
    /// `"<start>;<end>"` in Unix seconds.
    pub key_time: &'a str,
}

/// The pieces of a signature, kept apart for tests and for the server's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub sign_key: String,
    pub http_string_sha1: String,
    pub header_list: String,
    pub param_list: String,
    pub signature: String,
}

fn hmac_sha1_hex(key: &[u8], msg: &[u8]) -> String {
    let mut mac = HmacSha1::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

/// Canonicalise (name, value) pairs: returns (`a=1&b=2`, `a;b`).
fn canonical(pairs: &[(String, String)]) -> (String, String) {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (encode_strict(k).to_ascii_lowercase(), encode_strict(v)))
        .collect();
    enc.sort();
    let joined = enc
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let names = enc
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (joined, names)
}

/// Compute the signature of `input` with `secret_key`.
pub fn sign(input: &SignInput<'_>, secret_key: &str) -> Signature {
    let sign_key = hmac_sha1_hex(secret_key.as_bytes(), input.key_time.as_bytes());
    let (http_params, param_list) = canonical(input.params);
    let (http_headers, header_list) = canonical(input.headers);
    let http_string = format!(
        "{}\n{}\n{}\n{}\n",
        input.method.to_ascii_lowercase(),
        input.path,
        http_params,
        http_headers
    );
    let http_string_sha1 = hex::encode(Sha1::digest(http_string.as_bytes()));
    let string_to_sign = format!("sha1\n{}\n{}\n", input.key_time, http_string_sha1);
    // The SignKey is used as its ASCII hex text, not as 20 raw bytes.
    let signature = hmac_sha1_hex(sign_key.as_bytes(), string_to_sign.as_bytes());
    Signature {
        sign_key,
        http_string_sha1,
        header_list,
        param_list,
        signature,
    }
}

/// The `Authorization` header value for a signature.
pub fn authorization(secret_id: &str, key_time: &str, sig: &Signature) -> String {
    format!(
        "q-sign-algorithm=sha1&q-ak={secret_id}&q-sign-time={key_time}&q-key-time={key_time}&q-header-list={}&q-url-param-list={}&q-signature={}",
        sig.header_list, sig.param_list, sig.signature
    )
}

/// A parsed `Authorization` header (server side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub algorithm: String,
    pub secret_id: String,
    pub sign_time: String,
    pub key_time: String,
    pub header_list: Vec<String>,
    pub param_list: Vec<String>,
    pub signature: String,
}

impl ParsedAuthorization {
    /// Parse `q-sign-algorithm=sha1&q-ak=...&...`; `None` if a required field is missing.
    pub fn parse(value: &str) -> Option<Self> {
        let get = |name: &str| -> Option<String> {
            value.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let split = |s: String| -> Vec<String> {
            s.split(';')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        };
        Some(ParsedAuthorization {
            algorithm: get("q-sign-algorithm")?,
            secret_id: get("q-ak")?,
            sign_time: get("q-sign-time")?,
            key_time: get("q-key-time")?,
            header_list: split(get("q-header-list").unwrap_or_default()),
            param_list: split(get("q-url-param-list").unwrap_or_default()),
            signature: get("q-signature")?,
        })
    }

    /// `(start, end)` of the key time, if well formed.
    pub fn validity(&self) -> Option<(i64, i64)> {
        let (a, b) = self.key_time.split_once(';')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const ID_A: &str = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q";
    const KEY_A: &str = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz";
    const HOST_BJ: &str = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com";
    const HOST_GZ: &str = "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com";

    fn vector_a_headers() -> Vec<(String, String)> {
        pairs(&[
            ("Content-Length", "13"),
            ("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg=="),
            ("Content-Type", "text/plain"),
            ("Date", "Thu, 16 May 2019 06:45:51 GMT"),
            ("Host", HOST_BJ),
            ("x-cos-acl", "private"),
            ("x-cos-grant-read", "uin=\"100000000011\""),
        ])
    }

    #[test]
    fn vector_a_upload() {
        let headers = vector_a_headers();
        let sig = sign(
            &SignInput {
                method: "PUT",
                path: "/exampleobject(腾讯云)",
                params: &[],
                headers: &headers,
                key_time: "1557989151;1557996351",
            },
            KEY_A,
        );
        assert_eq!(sig.sign_key, "eb2519b498b02ac213cb1f3d1a3d27a3b3c9bc5f");
        assert_eq!(
            sig.http_string_sha1,
            "8b2751e77f43a0995d6e9eb9477f4b685cca4172"
        );
        assert_eq!(
            sig.header_list,
            "content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read"
        );
        assert_eq!(sig.signature, "3b8851a11a569213c17ba8fa7dcf2abec6935172");
        let auth = authorization(ID_A, "1557989151;1557996351", &sig);
        let parsed = ParsedAuthorization::parse(&auth).unwrap();
        assert_eq!(parsed.secret_id, ID_A);
        assert_eq!(parsed.header_list.len(), 7);
        assert_eq!(parsed.signature, sig.signature);
    }

    #[test]
    fn vector_a_must_not_match_encoded_path_or_raw_signkey() {
        let headers = vector_a_headers();
        let input = SignInput {
            method: "PUT",
            path: "/exampleobject(%E8%85%BE%E8%AE%AF%E4%BA%91)",
            params: &[],
            headers: &headers,
            key_time: "1557989151;1557996351",
        };
        let wrong = sign(&input, KEY_A);
        assert_eq!(wrong.signature, "7c721063919d103b9edf446ec8b660f954a66593");
        assert_ne!(wrong.signature, "3b8851a11a569213c17ba8fa7dcf2abec6935172");

        // SignKey used as 20 raw bytes instead of its hex text.
        let right = sign(
            &SignInput {
                path: "/exampleobject(腾讯云)",
                ..input
            },
            KEY_A,
        );
        let raw_key = hex::decode(&right.sign_key).unwrap();
        let sts = format!("sha1\n1557989151;1557996351\n{}\n", right.http_string_sha1);
        let raw = hmac_sha1_hex(&raw_key, sts.as_bytes());
        assert_eq!(raw, "71cfcd4e177b826003158e7dbfcda6c308a8e94d");
        assert_ne!(raw, right.signature);
    }

    #[test]
    fn vector_b_download_with_query() {
        let params = pairs(&[
            ("response-content-type", "application/octet-stream"),
            ("response-cache-control", "max-age=600"),
        ]);
        let headers = pairs(&[("Date", "Thu, 16 May 2019 06:55:53 GMT"), ("Host", HOST_BJ)]);
        let sig = sign(
            &SignInput {
                method: "GET",
                path: "/exampleobject(腾讯云)",
                params: &params,
                headers: &headers,
                key_time: "1557989753;1557996953",
            },
            KEY_A,
        );
        assert_eq!(sig.sign_key, "937914bf490e9e8c189836aad2052e4feeb35eaf");
        assert_eq!(
            sig.http_string_sha1,
            "54ecfe22f59d3514fdc764b87a32d8133ea611e6"
        );
        assert_eq!(
            sig.param_list,
            "response-cache-control;response-content-type"
        );
        assert_eq!(sig.signature, "01681b8c9d798a678e43b685a9f1bba0f6c0e012");
    }

    #[test]
    fn vector_c_go_sdk() {
        let headers = pairs(&[
            ("Host", "testbucket-125000000.cos.ap-guangzhou.myqcloud.com"),
            (
                "x-cos-content-sha1",
                "db8ac1c259eb89d4a131b253bacfca5f319d54f2",
            ),
            ("x-cos-stroage-class", "nearline"),
        ]);
        let sig = sign(
            &SignInput {
                method: "PUT",
                path: "/testfile2",
                params: &[],
                headers: &headers,
                key_time: "1480932292;1481012292",
            },
            "AKIDZfbOA78asKUYBcXFrJD0a1ICvR98JM",
        );
        assert_eq!(sig.signature, "ce4ac0ecbcdb30538b3fee0a97cc6389694ce53a");
    }

    #[test]
    fn vector_d_unicode_path_meta_and_token() {
        let headers = pairs(&[
            ("Content-MD5", "mQ/fVh815F3k6TAUm8m0eg=="),
            ("x-cos-meta-author", "Zhang San/张三"),
            ("x-cos-security-token", "tok+en/=="),
            ("Host", HOST_GZ),
        ]);
        let sig = sign(
            &SignInput {
                method: "PUT",
                path: "/dir/子目录/file name+1.txt",
                params: &[],
                headers: &headers,
                key_time: "1700000000;1700003600",
            },
            KEY_A,
        );
        assert_eq!(sig.signature, "051b1848ce5bd94d5536195ffff5649765478a87");
    }

    #[test]
    fn vector_e_listing_params() {
        let params = pairs(&[
            ("prefix", "photos/2024 年/"),
            ("delimiter", "/"),
            ("max-keys", "1000"),
            ("encoding-type", "url"),
        ]);
        let headers = pairs(&[("Host", HOST_GZ)]);
        let sig = sign(
            &SignInput {
                method: "GET",
                path: "/",
                params: &params,
                headers: &headers,
                key_time: "1700000000;1700003600",
            },
            KEY_A,
        );
        assert_eq!(sig.param_list, "delimiter;encoding-type;max-keys;prefix");
        assert_eq!(sig.signature, "b4efe65fdfcc1561cfe68fe3808ef640e1fcc55b");
    }

    #[test]
    fn vector_f_upload_part() {
        let params = pairs(&[
            ("partNumber", "1"),
            (
                "uploadId",
                "1585130821cbb7df1d11846c073ad648e8f33b087cec2381df437acdc833cf654b9ecc6361",
            ),
        ]);
        let headers = pairs(&[
            ("Content-MD5", "OScKloo1fSQgfpkRFiUH6w=="),
            ("Host", HOST_GZ),
        ]);
        let sig = sign(
            &SignInput {
                method: "PUT",
                path: "/a b/c.bin",
                params: &params,
                headers: &headers,
                key_time: "1700000000;1700003600",
            },
            KEY_A,
        );
        assert_eq!(sig.param_list, "partnumber;uploadid");
        assert_eq!(sig.signature, "b2c8cb187a70104b401504e4c5f26e7e2b5e2858");
    }
}
