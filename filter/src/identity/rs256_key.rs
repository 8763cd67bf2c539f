//! An RS256 verification key whose signature check is [`crate::identity::rsa`], with everything
//! else about the token (header, `alg`, encoding, length, time and audience claims) still
//! checked by jwt-simple, exactly as for every other algorithm.
//!
//! jwt-simple only lets a caller bring its own check through its `MACLike` trait: it
//! computes a tag over `header.payload` and compares it with the token's decoded
//! signature. [`Check`] decodes that signature exactly as jwt-simple does and "computes"
//! it as the tag when, and only when, the RSA check of exactly those bytes passed; when it
//! failed, the tag is the signature with a byte appended, which can never be equal (an
//! empty tag would equal an empty signature). The HMAC key the trait asks for is never
//! used to authenticate.

use jwt_simple::algorithms::HMACKey;
use jwt_simple::prelude::*;
use jwt_simple::reexports::ct_codecs::Base64UrlSafeNoPadding;

use crate::identity::rsa::RsaPublicKey;

#[derive(Clone)]
pub struct Rs256Key {
    rsa: RsaPublicKey,
    /// Only to satisfy `MACLike::key` (jwt-simple refuses one shorter than 12 bytes).
    unused_mac_key: HMACKey,
}

impl Rs256Key {
    /// From a JWK that jwt-simple accepted as an RS256 public key (its policy: a modulus
    /// of 2048 to 4096 bits, exponent 65537).
    pub fn new(key: &RS256PublicKey) -> Result<Rs256Key, String> {
        let parts = key.to_components();
        if parts.e != [1, 0, 1] {
            return Err("the RSA exponent must be 65537".into());
        }
        let rsa = RsaPublicKey::new(&parts.n).ok_or("invalid RSA modulus")?;
        Ok(Rs256Key {
            rsa,
            unused_mac_key: HMACKey::from_bytes(&[0; 32]),
        })
    }

    pub fn verify_token<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        options: Option<VerificationOptions>,
    ) -> Result<JWTClaims<C>, jwt_simple::Error> {
        // The third segment, decoded as jwt-simple decodes it (when there are more or fewer
        // segments, or it does not decode, jwt-simple refuses the token before any check).
        let signature = token
            .split('.')
            .nth(2)
            .and_then(|s| Base64UrlSafeNoPadding::decode_to_vec(s, None).ok())
            .unwrap_or_default();
        Check {
            key: self,
            signature,
            key_id: None,
            metadata: None,
        }
        .verify_token(token, options)
    }
}

/// One token's check (see the module documentation).
struct Check<'a> {
    key: &'a Rs256Key,
    signature: Vec<u8>,
    key_id: Option<String>,
    metadata: Option<KeyMetadata>,
}

impl MACLike for Check<'_> {
    fn jwt_alg_name() -> &'static str {
        "RS256"
    }

    fn key(&self) -> &HMACKey {
        &self.key.unused_mac_key
    }

    fn key_id(&self) -> &Option<String> {
        &self.key_id
    }

    fn set_key_id(&mut self, key_id: String) {
        self.key_id = Some(key_id);
    }

    fn metadata(&self) -> &Option<KeyMetadata> {
        &self.metadata
    }

    fn attach_metadata(&mut self, metadata: KeyMetadata) -> Result<(), jwt_simple::Error> {
        self.metadata = Some(metadata);
        Ok(())
    }

    fn authentication_tag(&self, authenticated: &[u8]) -> Vec<u8> {
        let mut tag = self.signature.clone();
        if !self.key.rsa.verify_sha256(authenticated, &self.signature) {
            tag.push(0);
        }
        tag
    }
}
