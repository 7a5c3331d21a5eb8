//! Transport floor for benchmarks: a bare socketioxide server on axum that speaks
//! just enough of chat-host's protocol for `chat-load` to run unchanged against it.
//! No auth check, no database, no plugins: `chat:ready` on connect, `chat:join`
//! joins the room and acks `{ ok: true }`, `chat:send-message` acks `{ ok: true }`
//! and broadcasts `chat:message` to the thread's room (not to the sender). The
//! service API routes chat-load calls for setup answer with empty successes.
//!
//! `chat-echo [ADDR]` (default `127.0.0.1:0`); prints `chat-echo listening on http://<addr>`.

use axum::{Router, http::StatusCode, routing::post, routing::put, serve::ListenerExt};
use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef},
};

fn thread_id(data: &Value) -> String {
    data.get("threadId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |socket: SocketRef| {
        socket.on(
            "chat:join",
            async |socket: SocketRef, Data(data): Data<Value>, ack: AckSender| {
                socket.join(thread_id(&data));
                let _ = ack.send(&json!({ "ok": true }));
            },
        );
        socket.on(
            "chat:send-message",
            async |socket: SocketRef, Data(data): Data<Value>, ack: AckSender| {
                let thread = thread_id(&data);
                let message = json!({
                    "threadId": thread,
                    "senderId": socket.id.to_string(),
                    "body": data.get("body"),
                    "clientMessageId": data.get("clientMessageId"),
                });
                let _ = ack.send(&json!({ "ok": true, "message": message }));
                let _ = socket
                    .to(thread)
                    .emit("chat:message", &json!({ "message": message }))
                    .await;
            },
        );
        let _ = socket.emit("chat:ready", &json!({ "userId": socket.id.to_string() }));
    });
    let app = Router::new()
        .route("/api/users/{id}", put(async || Json::ok()))
        .route(
            "/api/threads",
            post(async || (StatusCode::CREATED, Json::ok())),
        )
        .layer(layer);
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("chat-echo listening on http://{}", listener.local_addr()?);
    // No Nagle delay, as in chat-host: small frames leave at once.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// An empty JSON object.
struct Json;

impl Json {
    fn ok() -> axum::Json<Value> {
        axum::Json(json!({}))
    }
}
