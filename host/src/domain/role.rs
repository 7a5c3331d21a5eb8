//! What a user is on the marketplace.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A user's role; admins may read any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Buys work.
    Client,
    /// Sells work.
    Freelancer,
    /// Platform staff; reads any thread for disputes.
    Admin,
}

impl Role {
    /// The wire name (`client`, `freelancer`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Freelancer => "freelancer",
            Self::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client" => Some(Self::Client),
            "freelancer" => Some(Self::Freelancer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
