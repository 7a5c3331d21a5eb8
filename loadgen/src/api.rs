//! Setup through the service HTTP API (users and threads, bearer service
//! token) and client JWTs for the Socket.IO handshake.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::{Value, json};

/// How many API calls run at once during setup.
const SETUP_CONCURRENCY: usize = 16;
/// Attempts per API call when the server answers 500 or 503.
const ATTEMPTS: u32 = 8;

/// A user to create and connect as.
#[derive(Debug, Clone)]
pub struct User {
    /// User id (`sub` of its token).
    pub id: String,
    /// `client` or `freelancer`.
    pub role: &'static str,
}

/// A thread to create.
#[derive(Debug, Clone)]
pub struct Thread {
    /// Thread id.
    pub id: String,
    /// Participant user ids.
    pub participants: Vec<String>,
}

/// The service HTTP API of one server.
#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
    retries: Arc<AtomicU64>,
}

impl Api {
    /// The API at `base` (`http://host:port`), authenticated with the service token.
    pub fn new(base: &str, token: &str) -> Result<Self> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") {
            bail!("{base}: the service API must be a plain http:// address");
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(SETUP_CONCURRENCY)
            .build(connector);
        Ok(Self {
            client,
            base: base.to_owned(),
            token: token.to_owned(),
            retries: Arc::default(),
        })
    }

    /// Sends one JSON request and returns the status and the JSON answer (`Null` if empty).
    async fn call(&self, method: Method, path: &str, body: &Value) -> Result<(StatusCode, Value)> {
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| anyhow!("{method} {path}: timed out"))?
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    /// [`Api::call`], retried with backoff while the server answers 500 or 503
    /// (e.g. a busy embedded database); `done` says which statuses end the call
    /// successfully on the first attempt and on retries.
    async fn call_retrying(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        done: impl Fn(StatusCode, bool) -> bool,
    ) -> Result<()> {
        let mut backoff = Duration::from_millis(20);
        for attempt in 1..=ATTEMPTS {
            let (status, answer) = self.call(method.clone(), path, body).await?;
            if done(status, attempt > 1) {
                return Ok(());
            }
            let transient = matches!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR | StatusCode::SERVICE_UNAVAILABLE
            );
            if !transient || attempt == ATTEMPTS {
                bail!("{method} {path}: {status} {answer}");
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            let jitter = rand::random_range(0..=backoff.as_millis() as u64);
            tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        unreachable!("the last attempt returns")
    }

    /// Calls answered 500 or 503 and retried so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// `PUT /api/users/{id}`: creates or updates a profile.
    pub async fn put_user(&self, user: &User) -> Result<()> {
        let body = json!({ "displayName": format!("load {}", user.id), "role": user.role });
        let path = format!("/api/users/{}", user.id);
        self.call_retrying(Method::PUT, &path, &body, |s, _| s.is_success())
            .await
    }

    /// `POST /api/threads`: creates a thread with the given id and participants.
    /// On a retry, 409 `conflict` means an earlier attempt went through.
    pub async fn create_thread(&self, thread: &Thread) -> Result<()> {
        let body = json!({
            "id": thread.id,
            "title": format!("load {}", thread.id),
            "participantIds": thread.participants,
        });
        self.call_retrying(Method::POST, "/api/threads", &body, |s, retry| {
            s == StatusCode::CREATED || (retry && s == StatusCode::CONFLICT)
        })
        .await
    }

    /// Creates every user, then every thread, a few calls at a time.
    pub async fn setup(&self, users: &[User], threads: &[Thread]) -> Result<()> {
        stream::iter(users)
            .map(|u| self.put_user(u))
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        stream::iter(threads)
            .map(|t| self.create_thread(t))
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    role: &'a str,
    name: &'a str,
    exp: u64,
}

/// An HS256 client token for `user`, valid for a day.
pub fn mint_token(secret: &str, user: &User) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: &user.id,
        role: user.role,
        name: &user.id,
        exp: now + 24 * 3600,
    };
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_the_claims_and_verify_with_the_secret() {
        let user = User {
            id: "lg1-u0".into(),
            role: "freelancer",
        };
        let token = mint_token("s3cret", &user).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "lg1-u0");
        assert_eq!(data.claims["role"], "freelancer");
        assert!(
            jsonwebtoken::decode::<Value>(
                &token,
                &jsonwebtoken::DecodingKey::from_secret(b"other"),
                &validation,
            )
            .is_err()
        );
    }
}
