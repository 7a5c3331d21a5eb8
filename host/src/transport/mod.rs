//! Transports: Socket.IO handlers and HTTP routers. No business rules here:
//! decode, call a use case in [`crate::chat`], answer.

pub mod http;
pub mod listener;
pub mod pending;
pub mod redis_driver;
pub mod session;
pub mod socketio;
