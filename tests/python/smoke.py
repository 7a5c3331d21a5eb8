#!/usr/bin/env python3
"""python-socketio smoke test of chat-host.

Two users are set up through the service HTTP API; both connect with a stock
python-socketio client, join a thread; one sends a message with an ack and the
other receives it as `chat:message`. Exits non-zero on any failure.

Environment: CHAT_URL (http://127.0.0.1:<port>), CHAT_SERVICE_TOKEN, CHAT_JWT_SECRET;
optional CHAT_TRANSPORTS (e.g. `polling`: long-polling only; default: polling
upgraded to WebSocket) and CHAT_ROUNDS (messages each way, default 1; the load
balancer test runs many over polling, each its own HTTP requests).
"""

import json
import os
import queue
import secrets
import sys
import time
import urllib.error
import urllib.request
import warnings

import jwt
import socketio

TIMEOUT = 10
# Test secrets may be short; PyJWT's key-length advice is noise here.
warnings.filterwarnings("ignore", message="The HMAC key is")


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"smoke: {name} is not set")
    return value


URL = env("CHAT_URL").rstrip("/")
SERVICE_TOKEN = env("CHAT_SERVICE_TOKEN")
JWT_SECRET = env("CHAT_JWT_SECRET")
TRANSPORTS = os.environ.get("CHAT_TRANSPORTS", "").split(",") if os.environ.get("CHAT_TRANSPORTS") else None
ROUNDS = int(os.environ.get("CHAT_ROUNDS", "1"))


def fail(message):
    print(f"smoke: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def api(method, path, body):
    req = urllib.request.Request(
        URL + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {SERVICE_TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as res:
            text = res.read().decode()
            return res.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        fail(f"{method} {path}: HTTP {e.code} {e.read().decode()}")


def token(user_id, role):
    claims = {"sub": user_id, "role": role, "exp": int(time.time()) + 3600, "name": user_id}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


class User:
    """A connected python-socketio client that records chat:ready, chat:message and disconnects."""

    def __init__(self, user_id, role):
        self.id = user_id
        self.ready = queue.Queue()
        self.messages = queue.Queue()
        self.disconnects = 0
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("chat:ready", self.ready.put)
        self.sio.on("disconnect", self.disconnected)
        self.sio.on("chat:message", self.messages.put)
        try:
            self.sio.connect(URL, auth={"token": token(user_id, role)}, transports=TRANSPORTS, wait_timeout=TIMEOUT)
        except socketio.exceptions.ConnectionError as e:
            fail(f"{user_id} could not connect: {e}")
        try:
            ready = self.ready.get(timeout=TIMEOUT)
        except queue.Empty:
            fail(f"{user_id}: no chat:ready")
        if ready.get("userId") != user_id or ready.get("role") != role:
            fail(f"{user_id}: unexpected chat:ready {ready}")

    def disconnected(self, *reason):
        self.disconnects += 1

    def call(self, event, payload):
        ack = self.sio.call(event, payload, timeout=TIMEOUT)
        if not isinstance(ack, dict) or ack.get("ok") is not True:
            fail(f"{self.id}: {event} {payload} -> {ack}")
        return ack


def main():
    suffix = secrets.token_hex(6)
    alice_id, bob_id, thread_id = f"py_client_{suffix}", f"py_freelancer_{suffix}", f"py_thread_{suffix}"
    api("PUT", f"/api/users/{alice_id}", {"displayName": "Alice (python)", "role": "client"})
    api("PUT", f"/api/users/{bob_id}", {"displayName": "Bob (python)", "role": "freelancer"})
    status, created = api("POST", "/api/threads", {"id": thread_id, "title": "python smoke", "participantIds": [alice_id, bob_id]})
    if status != 201 or created.get("id") != thread_id:
        fail(f"POST /api/threads: {status} {created}")

    alice = User(alice_id, "client")
    bob = User(bob_id, "freelancer")
    try:
        joined = alice.call("chat:join", {"threadId": thread_id})["thread"]
        if joined["id"] != thread_id or joined["readOnly"] is not False:
            fail(f"unexpected thread view {joined}")
        bob.call("chat:join", {"threadId": thread_id})

        client_message_id = f"py-{suffix}"
        sent = alice.call("chat:send-message", {"threadId": thread_id, "body": "  hello from python  ", "clientMessageId": client_message_id})["message"]
        if sent["body"] != "hello from python" or sent["senderId"] != alice_id or sent["clientMessageId"] != client_message_id:
            fail(f"unexpected ack message {sent}")

        try:
            received = bob.messages.get(timeout=TIMEOUT)["message"]
        except queue.Empty:
            fail("bob did not receive chat:message")
        if received != sent:
            fail(f"bob received {received}, expected {sent}")

        for i in range(1, ROUNDS):
            for sender, receiver in ((alice, bob), (bob, alice)):
                body = f"round {i} from {sender.id}"
                m = sender.call("chat:send-message", {"threadId": thread_id, "body": body, "clientMessageId": f"py-{suffix}-{sender.id}-{i}"})["message"]
                try:
                    got = receiver.messages.get(timeout=TIMEOUT)["message"]
                except queue.Empty:
                    fail(f"{receiver.id} did not receive round {i}")
                if got != m:
                    fail(f"{receiver.id} received {got}, expected {m}")

        error = alice.sio.call("chat:send-message", {"threadId": thread_id, "body": "", "clientMessageId": f"py-empty-{suffix}"}, timeout=TIMEOUT)
        if error.get("ok") is not False or error.get("error", {}).get("code") != "invalid_payload":
            fail(f"an empty body should be invalid_payload, got {error}")
        for u in (alice, bob):
            if u.disconnects or u.sio.transport() != (TRANSPORTS or ["websocket"])[-1]:
                fail(f"{u.id}: {u.disconnects} disconnects, transport {u.sio.transport()}")
    finally:
        alice.sio.disconnect()
        bob.sio.disconnect()
    print(f"smoke: ok ({2 * ROUNDS - 1} messages delivered over python-socketio, transport {alice.sio.transport()})")


if __name__ == "__main__":
    main()
