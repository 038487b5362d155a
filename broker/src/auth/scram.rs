//! SCRAM (RFC 5802 / RFC 7677) server side, SHA-256 and SHA-512, as pure functions.
//!
//! Credentials are stored as (salt, iterations, StoredKey, ServerKey), never the secret:
//! StoredKey verifies a client's proof, ServerKey signs the server's final message.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Iterations used for new credentials (Kafka's minimum).
pub const ITERATIONS: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    pub fn mechanism(&self) -> &'static str {
        match self {
            Hash::Sha256 => "SCRAM-SHA-256",
            Hash::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn hmac(&self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut m =
                    SimpleHmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha512 => {
                let mut m =
                    SimpleHmac::<Sha512>::new_from_slice(key).expect("hmac takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(&self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi() of RFC 5802: PBKDF2 with HMAC, one block.
    fn salted_password(&self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut first = salt.to_vec();
        first.extend_from_slice(&1u32.to_be_bytes());
        let mut u = self.hmac(password, &first);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.hmac(password, &u);
            for (o, b) in out.iter_mut().zip(&u) {
                *o ^= b;
            }
        }
        out
    }
}

/// What the server stores for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    pub fn derive(hash: Hash, password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let salted = hash.salted_password(password, salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }

    /// Checks a plain password against the stored keys (used by SASL/PLAIN).
    pub fn matches_password(&self, hash: Hash, password: &[u8]) -> bool {
        let salted = hash.salted_password(password, &self.salt, self.iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        hash.digest(&client_key).ct_eq(&self.stored_key).into()
    }
}

/// Why a SCRAM exchange failed (the message is safe to show the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScramError(pub String);

fn err(m: &str) -> ScramError {
    ScramError(m.to_string())
}

/// The parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub gs2_header: String,
    pub bare: String,
    pub username: String,
    pub nonce: String,
}

/// Decodes `=2C` and `=3D` in a SCRAM user name.
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(err("malformed user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, ScramError> {
    let msg = std::str::from_utf8(msg).map_err(|_| err("client-first message is not utf-8"))?;
    let mut parts = msg.splitn(3, ',');
    let cbind = parts
        .next()
        .ok_or_else(|| err("empty client-first message"))?;
    let authzid = parts
        .next()
        .ok_or_else(|| err("truncated client-first message"))?;
    let bare = parts
        .next()
        .ok_or_else(|| err("truncated client-first message"))?;
    if cbind != "n" && cbind != "y" {
        return Err(err("channel binding is not supported"));
    }
    let mut username = None;
    let mut nonce = None;
    for attr in bare.split(',') {
        match attr.split_once('=') {
            Some(("n", v)) => username = Some(decode_saslname(v)?),
            Some(("r", v)) => nonce = Some(v.to_string()),
            Some(("m", _)) => return Err(err("mandatory extensions are not supported")),
            // Kafka's delegation-token extension and others are not supported here.
            Some((_, _)) => return Err(err("unsupported SCRAM extension")),
            None => return Err(err("malformed client-first message")),
        }
    }
    Ok(ClientFirst {
        gs2_header: format!("{cbind},{authzid},"),
        bare: bare.to_string(),
        username: username.ok_or_else(|| err("no user name"))?,
        nonce: nonce
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("no client nonce"))?,
    })
}

/// The server-first message for a client, with the server's nonce appended.
pub fn server_first(client: &ClientFirst, server_nonce: &str, cred: &ScramCredential) -> String {
    format!(
        "r={}{},s={},i={}",
        client.nonce,
        server_nonce,
        B64.encode(&cred.salt),
        cred.iterations
    )
}

/// Verifies the client-final message; returns the server-final message.
pub fn verify_client_final(
    hash: Hash,
    client: &ClientFirst,
    server_first: &str,
    full_nonce: &str,
    cred: &ScramCredential,
    msg: &[u8],
) -> Result<String, ScramError> {
    let msg = std::str::from_utf8(msg).map_err(|_| err("client-final message is not utf-8"))?;
    let (without_proof, proof) = msg
        .rsplit_once(",p=")
        .ok_or_else(|| err("no client proof"))?;
    let mut channel = None;
    let mut nonce = None;
    for attr in without_proof.split(',') {
        match attr.split_once('=') {
            Some(("c", v)) => channel = Some(v),
            Some(("r", v)) => nonce = Some(v),
            _ => {}
        }
    }
    if channel != Some(B64.encode(client.gs2_header.as_bytes()).as_str()) {
        return Err(err("channel binding mismatch"));
    }
    // librdkafka before 2.6.1 sends its own nonce once more in front of the full one; Kafka
    // accepts that since 3.8.1, and so must we, or every Debian-era client fails SCRAM.
    let doubled = format!("{}{}", client.nonce, full_nonce);
    if nonce != Some(full_nonce) && nonce != Some(doubled.as_str()) {
        return Err(err("nonce mismatch"));
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| err("client proof is not base64"))?;
    let auth_message = format!("{},{},{}", client.bare, server_first, without_proof);
    let client_signature = hash.hmac(&cred.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(err("authentication failed"));
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    if !bool::from(hash.digest(&client_key).ct_eq(&cred.stored_key)) {
        return Err(err("authentication failed"));
    }
    let server_signature = hash.hmac(&cred.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SCRAM-SHA-256 example exchange of RFC 7677, section 3.
    #[test]
    fn rfc7677_example() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::derive(Hash::Sha256, b"pencil", &salt, 4096);
        let client = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(client.username, "user");
        let sf = server_first(&client, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &cred);
        assert_eq!(sf, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        let final_msg = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let out = verify_client_final(
            Hash::Sha256,
            &client,
            &sf,
            "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            &cred,
            final_msg,
        )
        .unwrap();
        assert_eq!(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        // A wrong proof is refused.
        let mut bad = final_msg.to_vec();
        let n = bad.len();
        bad[n - 3] = b'A';
        assert!(verify_client_final(
            Hash::Sha256,
            &client,
            &sf,
            "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            &cred,
            &bad
        )
        .is_err());
        assert!(cred.matches_password(Hash::Sha256, b"pencil"));
        // Old librdkafka's doubled client nonce is accepted (the proof covers what it sent).
        let client = parse_client_first(b"n,,n=user,r=abc").unwrap();
        let sf = server_first(&client, "XYZ", &cred);
        let salted = Hash::Sha256.salted_password(b"pencil", &salt, 4096);
        let client_key = Hash::Sha256.hmac(&salted, b"Client Key");
        let without_proof = "c=biws,r=abcabcXYZ";
        let auth = format!("n=user,r=abc,{sf},{without_proof}");
        let sig = Hash::Sha256.hmac(&cred.stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let msg = format!("{without_proof},p={}", B64.encode(proof));
        assert!(
            verify_client_final(Hash::Sha256, &client, &sf, "abcXYZ", &cred, msg.as_bytes())
                .is_ok()
        );
        let other = msg.replace("r=abcabcXYZ", "r=zzzabcXYZ");
        assert!(verify_client_final(
            Hash::Sha256,
            &client,
            &sf,
            "abcXYZ",
            &cred,
            other.as_bytes()
        )
        .is_err());
        assert!(!cred.matches_password(Hash::Sha256, b"pencil2"));
    }

    #[test]
    fn bad_client_first_messages() {
        for m in [
            &b""[..],
            b"p=x,,n=u,r=1",
            b"n,,n=u",
            b"n,,r=abc",
            b"n,,n=a=3,r=1",
            b"n,,n=u,r=1,m=ext",
            b"\xff",
        ] {
            assert!(parse_client_first(m).is_err(), "{m:?}");
        }
        assert_eq!(
            parse_client_first(b"n,,n=a=2Cb=3D,r=x").unwrap().username,
            "a,b="
        );
    }
}
