//! Client identity: HS256 JWT verification for sockets and the admin API.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

use crate::domain::{Role, is_valid_id};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds ("a few seconds at most").
const LEEWAY_SECS: u64 = 2;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim: 1-64 chars of `[A-Za-z0-9_.:-]`.
    pub user_id: String,
    /// The `role` claim.
    pub role: Role,
}

/// Why a token was refused; never shown to the client beyond `unauthorized`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Signature, algorithm, expiry or shape is wrong.
    #[error("invalid token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// `sub` is not a valid user id.
    #[error("invalid subject")]
    Subject,
    /// `role` is not one of the known roles.
    #[error("invalid role")]
    Role,
    /// `iat` is in the future: the token was not issued yet.
    #[error("issued in the future")]
    IssuedLater,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: Option<u64>,
}

/// Verifies client JWTs (HS256 only, `exp` required; `nbf` and `iat`, when
/// present, not in the future).
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier for tokens signed with `secret`.
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Checks signature, algorithm, lifetime (`exp`, `nbf`, `iat`), subject and role.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let claims = decode::<Claims>(token, &self.key, &self.validation)?.claims;
        if claims
            .iat
            .is_some_and(|iat| iat > jsonwebtoken::get_current_timestamp() + LEEWAY_SECS)
        {
            return Err(AuthError::IssuedLater);
        }
        if !is_valid_id(&claims.sub) {
            return Err(AuthError::Subject);
        }
        let role = Role::parse(&claims.role).ok_or(AuthError::Role)?;
        Ok(Identity {
            user_id: claims.sub,
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn sign(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn accepts_a_valid_token_and_refuses_bad_ones() {
        let v = TokenVerifier::new("s3cret");
        let ok = sign(
            json!({"sub":"u1","role":"freelancer","exp":now()+60}),
            "s3cret",
        );
        assert_eq!(v.verify(&ok).unwrap().role, Role::Freelancer);
        let current = sign(
            json!({"sub":"u1","role":"client","exp":now()+60,"nbf":now()+1,"iat":now()+1}),
            "s3cret",
        );
        assert!(v.verify(&current).is_ok(), "within the leeway");

        let cases = [
            sign(json!({"sub":"u1","role":"client","exp":now()+60}), "other"),
            sign(json!({"sub":"u1","role":"client","exp":now()-10}), "s3cret"),
            sign(json!({"sub":"u1","role":"client"}), "s3cret"),
            sign(json!({"sub":"u 1","role":"client","exp":now()+60}), "s3cret"),
            sign(json!({"sub":"u1","role":"root","exp":now()+60}), "s3cret"),
            // not valid yet, or issued in the future
            sign(
                json!({"sub":"u1","role":"client","exp":now()+7200,"nbf":now()+3600}),
                "s3cret",
            ),
            sign(
                json!({"sub":"u1","role":"client","exp":now()+60,"iat":now()+365*86400}),
                "s3cret",
            ),
            // alg: none, unsigned
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsInJvbGUiOiJhZG1pbiIsImV4cCI6OTk5OTk5OTk5OX0.".into(),
            "garbage".into(),
        ];
        for token in cases {
            assert!(v.verify(&token).is_err(), "accepted {token}");
        }
    }
}
