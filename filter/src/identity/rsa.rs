//! RS256 signature checks (RSASSA-PKCS1-v1_5 with SHA-256, public exponent 65537) in
//! 32-bit limbs.
//!
//! jwt-simple checks RSA signatures through the `rsa` crate, whose big integers use 64-bit
//! digits multiplied into 128-bit products: wasm has no 64x64->128 multiply, so in V8 each
//! product is a call into compiler-rt, and a cold RS256 token cost 0.94 ms (0.13 ms
//! natively). With 32-bit limbs every product is one native i64 multiply. RS256 is what
//! most identity providers sign with, so every new token of most deployments pays this.
//!
//! Only the public operation is done here (no secret is involved, so nothing needs to run
//! in constant time). The decoded signature is compared with the whole expected encoding,
//! never parsed, which rules out the padding-parsing forgeries of PKCS#1 v1.5 verifiers.

/// DER prefix of the `DigestInfo` for SHA-256 (RFC 8017, section 9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// An RSA public key with exponent 65537, ready for Montgomery arithmetic.
#[derive(Clone)]
pub struct RsaPublicKey {
    /// The modulus, least significant limb first.
    n: Vec<u32>,
    /// `-n^-1 mod 2^32`.
    n0inv: u32,
    /// `R^2 mod n` with `R = 2^(32 * limbs)`: moves a number into Montgomery form.
    rr: Vec<u32>,
    /// The modulus length in bytes: a signature has exactly this length.
    bytes: usize,
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPublicKey({} bits)", self.n.len() * 32)
    }
}

impl RsaPublicKey {
    /// From the big-endian modulus (leading zeros allowed). The exponent is 65537, which
    /// jwt-simple's key policy requires of every RSA key it accepts. `None` for a modulus
    /// that is even or shorter than 512 bits.
    pub fn new(modulus: &[u8]) -> Option<RsaPublicKey> {
        let start = modulus.iter().position(|b| *b != 0)?;
        let modulus = modulus.get(start..)?;
        let bytes = modulus.len();
        let n = limbs(modulus, bytes.div_ceil(4))?;
        let n0 = *n.first()?;
        if n0 & 1 == 0 || bytes < 64 {
            return None;
        }
        // Newton's iteration doubles the correct low bits of the inverse each step.
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let rr = r_squared(&n)?;
        Some(RsaPublicKey {
            n,
            n0inv: inv.wrapping_neg(),
            rr,
            bytes,
        })
    }

    /// Whether `signature` is this key's RS256 signature of `message`.
    pub fn verify_sha256(&self, message: &[u8], signature: &[u8]) -> bool {
        if signature.len() != self.bytes {
            return false;
        }
        let Some(s) = limbs(signature, self.n.len()) else {
            return false;
        };
        if !less_than(&s, &self.n) {
            return false;
        }
        let encoded = to_bytes(&self.pow_65537(&s), self.bytes);
        let digest = hmac_sha256::Hash::hash(message);
        let Some(pad) = self
            .bytes
            .checked_sub(3 + SHA256_DIGEST_INFO.len() + digest.len())
        else {
            return false;
        };
        let expected = [0x00, 0x01]
            .iter()
            .chain(std::iter::repeat_n(&0xff, pad))
            .chain(&[0x00])
            .chain(&SHA256_DIGEST_INFO)
            .chain(&digest);
        encoded.iter().eq(expected)
    }

    /// `s^65537 mod n`: sixteen squarings and one multiplication, in Montgomery form.
    fn pow_65537(&self, s: &[u32]) -> Vec<u32> {
        let mut m = Montgomery::new(self);
        let base = m.mul(s, &self.rr);
        let mut acc = base.clone();
        for _ in 0..16 {
            acc = m.mul(&acc, &acc);
        }
        acc = m.mul(&acc, &base);
        let mut one = vec![0u32; self.n.len()];
        if let Some(first) = one.first_mut() {
            *first = 1;
        }
        m.mul(&acc, &one)
    }
}

/// Montgomery multiplication (CIOS) with its scratch space.
struct Montgomery<'a> {
    key: &'a RsaPublicKey,
    t: Vec<u32>,
    u: Vec<u32>,
}

impl<'a> Montgomery<'a> {
    fn new(key: &'a RsaPublicKey) -> Montgomery<'a> {
        let len = key.n.len();
        Montgomery {
            key,
            t: vec![0; len],
            u: vec![0; len],
        }
    }

    /// `a * b / R mod n`, for `a, b < n`.
    fn mul(&mut self, a: &[u32], b: &[u32]) -> Vec<u32> {
        let n = &self.key.n;
        let n0 = n.first().copied().unwrap_or(0);
        let (t, u) = (&mut self.t, &mut self.u);
        t.fill(0);
        // t[len] and t[len + 1], kept apart: `top < 2^33`.
        let mut top: u64 = 0;
        for &bi in b {
            let mut carry = 0u64;
            for (tj, &aj) in t.iter_mut().zip(a) {
                let x = u64::from(*tj) + u64::from(aj) * u64::from(bi) + carry;
                *tj = x as u32;
                carry = x >> 32;
            }
            top += carry;
            // Add m * n, which makes the lowest limb zero, and drop that limb.
            let t0 = t.first().copied().unwrap_or(0);
            let m = t0.wrapping_mul(self.key.n0inv);
            let mut carry = (u64::from(t0) + u64::from(m) * u64::from(n0)) >> 32;
            for (uj, (&tj, &nj)) in u.iter_mut().zip(t.iter().skip(1).zip(n.iter().skip(1))) {
                let x = u64::from(tj) + u64::from(m) * u64::from(nj) + carry;
                *uj = x as u32;
                carry = x >> 32;
            }
            let x = top + carry;
            if let Some(last) = u.last_mut() {
                *last = x as u32;
            }
            top = x >> 32;
            std::mem::swap(t, u);
        }
        let mut out = t.clone();
        if top != 0 || !less_than(&out, n) {
            subtract(&mut out, n);
        }
        out
    }
}

/// `R^2 mod n`, by doubling `2^(bits - 1)` (below `n`) modulo `n` up to `2^(64 * limbs)`.
fn r_squared(n: &[u32]) -> Option<Vec<u32>> {
    let top = *n.last()?;
    let bits = n.len() * 32 - top.leading_zeros() as usize;
    let mut x = vec![0u32; n.len()];
    let limb = x.get_mut((bits - 1) / 32)?;
    *limb = 1 << ((bits - 1) % 32);
    for _ in (bits - 1)..(64 * n.len()) {
        let mut carry = 0u32;
        for xi in x.iter_mut() {
            let next = *xi >> 31;
            *xi = (*xi << 1) | carry;
            carry = next;
        }
        if carry != 0 || !less_than(&x, n) {
            subtract(&mut x, n);
        }
    }
    Some(x)
}

/// Big-endian bytes as `len` limbs, least significant first; `None` when they do not fit.
fn limbs(bytes: &[u8], len: usize) -> Option<Vec<u32>> {
    if bytes.len() > len * 4 {
        return None;
    }
    let mut out = vec![0u32; len];
    for (i, b) in bytes.iter().rev().enumerate() {
        let limb = out.get_mut(i / 4)?;
        *limb |= u32::from(*b) << (8 * (i % 4));
    }
    Some(out)
}

/// The low `len` bytes of a number, big-endian.
fn to_bytes(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = limbs
        .iter()
        .flat_map(|l| l.to_le_bytes())
        .take(len)
        .collect();
    out.resize(len, 0);
    out.reverse();
    out
}

/// `a < b`, for numbers of equal length.
fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` modulo `2^(32 * len)`.
fn subtract(a: &mut [u32], b: &[u32]) {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(u32::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Keys;
    use jwt_simple::prelude::*;

    fn key_of(pair: &RS256KeyPair) -> RsaPublicKey {
        RsaPublicKey::new(&pair.public_key().to_components().n).unwrap()
    }

    fn split(token: &str) -> (String, Vec<u8>) {
        use base64::Engine as _;
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap();
        (signed.to_string(), sig)
    }

    #[test]
    fn accepts_what_jwt_simple_signs_and_nothing_altered() {
        let keys = Keys::new();
        let key = key_of(&keys.rs256);
        for i in 0..8 {
            let claims = Claims::create(Duration::from_secs(60)).with_subject(format!("user-{i}"));
            let (signed, sig) = split(&keys.rs256.sign(claims).unwrap());
            assert!(key.verify_sha256(signed.as_bytes(), &sig), "token {i}");
            let mut other = signed.clone().into_bytes();
            other.push(b'x');
            assert!(!key.verify_sha256(&other, &sig), "message changed");
            for at in [0, sig.len() / 2, sig.len() - 1] {
                let mut bad = sig.clone();
                bad[at] ^= 1;
                assert!(
                    !key.verify_sha256(signed.as_bytes(), &bad),
                    "bit flip at {at}"
                );
            }
            assert!(!key.verify_sha256(signed.as_bytes(), &sig[1..]), "short");
            let mut long = vec![0];
            long.extend(&sig);
            assert!(!key.verify_sha256(signed.as_bytes(), &long), "long");
        }
    }

    #[test]
    fn refuses_a_signature_of_another_key_or_not_below_the_modulus() {
        let keys = Keys::new();
        let key = key_of(&keys.rs256);
        let other = RS256KeyPair::generate(2048).unwrap();
        let (signed, sig) = split(&other.sign(Claims::create(Duration::from_secs(60))).unwrap());
        assert!(!key.verify_sha256(signed.as_bytes(), &sig));
        assert!(key_of(&other).verify_sha256(signed.as_bytes(), &sig));
        let n = keys.rs256.public_key().to_components().n;
        assert!(!key.verify_sha256(signed.as_bytes(), &n), "s = n");
        assert!(
            !key.verify_sha256(signed.as_bytes(), &vec![0xff; n.len()]),
            "s > n"
        );
        assert!(
            !key.verify_sha256(signed.as_bytes(), &vec![0; n.len()]),
            "s = 0"
        );
    }

    #[test]
    fn the_signature_one_is_refused() {
        // s = 1 gives s^e = 1, whatever the message.
        let keys = Keys::new();
        let key = key_of(&keys.rs256);
        let mut one = vec![0u8; key.bytes];
        *one.last_mut().unwrap() = 1;
        assert!(!key.verify_sha256(b"anything", &one));
    }

    #[test]
    fn keys_of_each_size_work_and_bad_moduli_are_refused() {
        for bits in [2048, 3072, 4096] {
            let pair = RS256KeyPair::generate(bits).unwrap();
            let (signed, sig) = split(&pair.sign(Claims::create(Duration::from_secs(60))).unwrap());
            let key = key_of(&pair);
            assert!(key.verify_sha256(signed.as_bytes(), &sig), "{bits} bits");
            let mut padded = vec![0, 0];
            padded.extend(pair.public_key().to_components().n);
            let key = RsaPublicKey::new(&padded).unwrap();
            assert!(
                key.verify_sha256(signed.as_bytes(), &sig),
                "{bits} bits, leading zeros"
            );
        }
        assert!(RsaPublicKey::new(&[]).is_none());
        assert!(RsaPublicKey::new(&[0; 300]).is_none());
        assert!(RsaPublicKey::new(&[0xff; 32]).is_none(), "too short");
        let mut even = vec![0xff; 256];
        *even.last_mut().unwrap() = 0xfe;
        assert!(RsaPublicKey::new(&even).is_none(), "even");
    }

    proptest::proptest! {
        #[test]
        fn any_modulus_and_signature_is_answered_never_a_panic(
            modulus in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            signature in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
        ) {
            if let Some(key) = RsaPublicKey::new(&modulus) {
                proptest::prop_assert!(!key.verify_sha256(b"message", &signature));
            }
        }
    }

    #[test]
    fn montgomery_arithmetic_matches_small_numbers() {
        // n = 2^521 - 1 is odd: check x * y mod n through the Montgomery form against
        // values computed by hand (powers of two wrap around: 2^521 = 1 mod n).
        let mut n_be = vec![0x01];
        n_be.extend(vec![0xff; 65]);
        let key = RsaPublicKey::new(&n_be).unwrap();
        let mut m = Montgomery::new(&key);
        let num = |bit: usize| {
            let mut v = vec![0u32; key.n.len()];
            v[bit / 32] = 1 << (bit % 32);
            v
        };
        let to_mont = |m: &mut Montgomery, x: &[u32]| m.mul(x, &key.rr);
        let (a, b) = (num(300), num(400));
        let (am, bm) = (to_mont(&mut m, &a), to_mont(&mut m, &b));
        let product = m.mul(&am, &bm);
        let one = num(0);
        // 2^700 = 2^179 mod 2^521 - 1.
        assert_eq!(m.mul(&product, &one), num(179));
    }
}
