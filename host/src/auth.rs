//! Client identity: HS256 JWT verification for sockets and the admin API.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::config::Config;
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
    /// The `exp` claim, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// How long a token whose `exp` is `expires_at` stays valid from now, with
/// the leeway the verifier grants; zero once it has expired.
pub fn time_left(expires_at: u64) -> std::time::Duration {
    let end = std::time::UNIX_EPOCH + std::time::Duration::from_secs(expires_at + LEEWAY_SECS);
    end.duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
}

/// Which tokens a [`TokenVerifier`] accepts besides a valid signature and lifetime.
#[derive(Debug, Clone, Default)]
pub struct TokenRules {
    /// When set, the `iss` claim must equal it (`CHAT_JWT_ISSUER`).
    pub issuer: Option<String>,
    /// When set, the `aud` claim must contain it (`CHAT_JWT_AUDIENCE`).
    pub audience: Option<String>,
}

impl TokenRules {
    /// The rules `config` sets (blank values are unset).
    pub fn from_config(config: &Config) -> Self {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Self {
            issuer: set(&config.jwt_issuer),
            audience: set(&config.jwt_audience),
        }
    }
}

/// Why a token was refused. The text says what is wrong with the token, never
/// anything about the server: it is the message of the HTTP API's 401, and the
/// label of the refused-handshake counter (the socket's `connect_error` stays
/// `unauthorized`, as the contract says).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `exp` is past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future, beyond the leeway.
    #[error("token not valid yet")]
    NotYetValid,
    /// A claim the server needs (`exp`, `sub`) is absent.
    #[error("invalid token: no {0} claim")]
    MissingClaim(String),
    /// Not a JWT, a wrong signature or algorithm, or claims of the wrong type.
    #[error("invalid token")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// `sub` is not a valid user id.
    #[error("invalid token: sub is not a valid user id")]
    Subject,
    /// `role` is not one of the known roles.
    #[error("invalid token: unknown role")]
    Role,
}

impl AuthError {
    /// A short, stable name of the reason (a metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingClaim(_) => "missing_claim",
            Self::Invalid(_) => "invalid",
            Self::Subject => "subject",
            Self::Role => "role",
        }
    }
}

impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::MissingRequiredClaim(claim) => Self::MissingClaim(claim.clone()),
            _ => Self::Invalid(e),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    role: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
}

/// Verifies client JWTs (HS256 only, `exp` required; `nbf` and `iat`, when
/// present, not in the future; `iss` and `aud` when [`TokenRules`] ask for them).
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier for tokens signed with `secret` that follow `rules`.
    pub fn new(secret: &str, rules: &TokenRules) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &rules.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &rules.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // An `aud` claim is accepted as it is when no audience is configured.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
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
            return Err(AuthError::NotYetValid);
        }
        let sub = claims
            .sub
            .ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
        if !is_valid_id(&sub) {
            return Err(AuthError::Subject);
        }
        let role = claims
            .role
            .ok_or_else(|| AuthError::MissingClaim("role".into()))?;
        let role = Role::parse(&role).ok_or(AuthError::Role)?;
        let expires_at = claims
            .exp
            .ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        Ok(Identity {
            user_id: sub,
            role,
            expires_at,
        })
    }
}

/// The claims [`TokenIssuer`] signs.
#[derive(Serialize)]
struct Issued<'a> {
    sub: &'a str,
    role: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Signs tokens the [`TokenVerifier`] of the same secret and rules accepts:
/// the demo page's users and the dev-mode console sign-in, never in production
/// unless the demo is switched on there.
pub struct TokenIssuer {
    key: EncodingKey,
    rules: TokenRules,
}

impl TokenIssuer {
    /// An issuer signing with `secret`, adding the claims `rules` require.
    pub fn new(secret: &str, rules: &TokenRules) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            rules: rules.clone(),
        }
    }

    /// A token for `user_id` as `role`, valid for `lifetime`; returns it with its `exp`.
    pub fn issue(&self, user_id: &str, role: Role, lifetime: std::time::Duration) -> (String, u64) {
        let iat = jsonwebtoken::get_current_timestamp();
        let exp = iat + lifetime.as_secs();
        let claims = Issued {
            sub: user_id,
            role: role.as_str(),
            iat,
            exp,
            iss: self.rules.issuer.as_deref(),
            aud: self.rules.audience.as_deref(),
        };
        let token = encode(&Header::default(), &claims, &self.key)
            .expect("HS256 signs any claims that serialize");
        (token, exp)
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
        let v = TokenVerifier::new("s3cret", &TokenRules::default());
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
            (sign(json!({"sub":"u1","role":"client","exp":now()+60}), "other"), "invalid token"),
            (sign(json!({"sub":"u1","role":"client","exp":now()-10}), "s3cret"), "token expired"),
            // An expired token with a wrong signature says nothing about its claims.
            (sign(json!({"sub":"u1","role":"client","exp":now()-10}), "other"), "invalid token"),
            (sign(json!({"sub":"u1","role":"client"}), "s3cret"), "invalid token: no exp claim"),
            (sign(json!({"role":"client","exp":now()+60}), "s3cret"), "invalid token: no sub claim"),
            (sign(json!({"sub":"u1","exp":now()+60}), "s3cret"), "invalid token: no role claim"),
            (sign(json!({"sub":"u 1","role":"client","exp":now()+60}), "s3cret"), "invalid token: sub is not a valid user id"),
            (sign(json!({"sub":"u1","role":"root","exp":now()+60}), "s3cret"), "invalid token: unknown role"),
            (sign(json!({"sub":"u1","role":7,"exp":now()+60}), "s3cret"), "invalid token"),
            // not valid yet, or issued in the future
            (
                sign(json!({"sub":"u1","role":"client","exp":now()+7200,"nbf":now()+3600}), "s3cret"),
                "token not valid yet",
            ),
            (
                sign(json!({"sub":"u1","role":"client","exp":now()+60,"iat":now()+365*86400}), "s3cret"),
                "token not valid yet",
            ),
            // alg: none, unsigned
            ("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsInJvbGUiOiJhZG1pbiIsImV4cCI6OTk5OTk5OTk5OX0.".into(), "invalid token"),
            ("garbage".into(), "invalid token"),
        ];
        for (token, message) in cases {
            match v.verify(&token) {
                Ok(_) => panic!("accepted {token}"),
                Err(e) => assert_eq!(e.to_string(), message, "{token}"),
            }
        }
        let expired = sign(json!({"sub":"u1","role":"client","exp":now()-10}), "s3cret");
        assert_eq!(v.verify(&expired).unwrap_err().to_string(), "token expired");
        assert_eq!(
            v.verify("garbage").unwrap_err().to_string(),
            "invalid token"
        );
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let rules = TokenRules {
            issuer: Some("https://id.example".into()),
            audience: Some("chat".into()),
        };
        let v = TokenVerifier::new("s3cret", &rules);
        let exp = now() + 60;
        let good = sign(
            json!({"sub":"u1","role":"client","exp":exp,"iss":"https://id.example","aud":["web","chat"]}),
            "s3cret",
        );
        let identity = v.verify(&good).unwrap();
        assert_eq!(identity.expires_at, exp);
        let left = time_left(identity.expires_at);
        assert!(
            left > std::time::Duration::from_secs(60) && left <= std::time::Duration::from_secs(62)
        );
        assert_eq!(time_left(now() - 3), std::time::Duration::ZERO);
        for claims in [
            json!({"sub":"u1","role":"client","exp":exp,"aud":"chat"}),
            json!({"sub":"u1","role":"client","exp":exp,"iss":"https://id.example"}),
            json!({"sub":"u1","role":"client","exp":exp,"iss":"https://evil.example","aud":"chat"}),
            json!({"sub":"u1","role":"client","exp":exp,"iss":"https://id.example","aud":"other"}),
        ] {
            assert!(
                v.verify(&sign(claims.clone(), "s3cret")).is_err(),
                "accepted {claims}"
            );
        }
        // Without rules, `iss` and `aud` are not required and not checked.
        let plain = TokenVerifier::new("s3cret", &TokenRules::default());
        assert!(plain.verify(&good).is_ok());
    }
}
