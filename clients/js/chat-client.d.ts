// Typings of chat-client.mjs (the wire contract is docs/protocol.md).
import type { io as ioFn, Socket, SocketOptions, ManagerOptions } from 'socket.io-client';

export type Role = 'client' | 'freelancer' | 'admin';
export type ErrorCode =
  | 'unauthorized' | 'forbidden' | 'not_found' | 'invalid_payload'
  | 'rate_limited' | 'rejected' | 'unavailable' | 'internal' | 'timeout';

export interface Message {
  /** Decimal string; compare as integers. */
  id: string;
  threadId: string;
  senderId: string;
  body: string;
  clientMessageId: string;
  /** RFC 3339 UTC with milliseconds. */
  createdAt: string;
}
export interface Participant {
  userId: string;
  displayName: string;
  avatarUrl: string | null;
  role: Role;
  online: boolean;
  lastReadMessageId: string | null;
}
export interface ThreadView {
  id: string;
  title: string;
  participants: Participant[];
  lastMessage: Message | null;
  unreadCount: number;
  readOnly: boolean;
}
export interface TypingEvent { threadId: string; userId: string; isTyping: boolean }
export interface ReadEvent { threadId: string; userId: string; messageId: string; readAt: string }
export interface PresenceEvent { userId: string; online: boolean; lastSeenAt?: string }
export interface ResyncEvent { threadIds: string[] }
export interface ReadyEvent { userId: string; role: Role; serverTime: string; tokenExpiresAt: string }
/** The server disconnects the socket right after this. */
export interface ClosingEvent { reason: 'token_expired' | 'flooding'; message: string }

export interface Events {
  message: Message;
  typing: TypingEvent;
  read: ReadEvent;
  presence: PresenceEvent;
  resync: ResyncEvent;
  ready: ReadyEvent;
  closing: ClosingEvent;
  /** With a token source: the token was refreshed. */
  refreshed: { expiresAt: string };
  /** With a token source: a refresh was refused (the socket closes at expiry, then reconnects). */
  'refresh-failed': ChatError;
}

export class ChatError extends Error {
  code: ErrorCode;
  /** With `rate_limited`. */
  retryAfterMs?: number;
}

export interface ChatClientOptions {
  /** A function is asked on every (re)connect and before the token expires (then refreshed live). */
  token: string | (() => string);
  /** A cursor kept from an earlier session (the highest message id seen). */
  lastMessageId?: string;
  /** Milliseconds to wait for an event's ack (default 5000). */
  ackTimeout?: number;
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

export class ChatClient {
  constructor(io: typeof ioFn, url: string, options: ChatClientOptions);
  readonly socket: Socket;
  /** The resume cursor: the highest message id seen. */
  lastMessageId: string | undefined;
  /** Resolves with the first `chat:ready`. */
  readonly ready: Promise<ReadyEvent>;
  on<K extends keyof Events>(name: K, listener: (data: Events[K]) => void): () => void;
  request(event: string, payload?: unknown): Promise<Record<string, unknown>>;
  join(threadId: string): Promise<ThreadView>;
  leave(threadId: string): Promise<Record<string, never>>;
  /**
   * Resolves to the stored message. Retried with the same `clientMessageId` after a
   * `timeout` or `unavailable`, up to `attempts` (default 3) with a backoff from 250 ms.
   */
  send(threadId: string, body: string, options?: { clientMessageId?: string; attempts?: number }): Promise<Message>;
  read(threadId: string, messageId: string): Promise<{ lastReadMessageId: string }>;
  typing(threadId: string, isTyping: boolean): Promise<Record<string, never>>;
  history(threadId: string, page?: { beforeId?: string; afterId?: string; limit?: number }): Promise<{ messages: Message[]; hasMore: boolean }>;
  close(): void;
}
