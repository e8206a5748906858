// Types of tidings.js, the browser client of the Tidings push server. See docs/client.md.

export type TransportName = 'websocket' | 'sse' | 'stream' | 'iframe' | 'longpoll' | 'poll';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface TidingsOptions {
  /** Transports to try, in order. Default: all six, WebSocket first, short polling last. */
  transports?: TransportName[];
  /** ms a transport has to open and deliver its first frame, chunk or notice. Default 5000. */
  openTimeout?: number;
  /** Reconnection delay: exponential from `base`, capped at `max`, full jitter (ms). Default {base: 500, max: 15000}. */
  backoff?: { base?: number; max?: number };
  /** Share one connection among the tabs of this origin (BroadcastChannel + leader election). Default false. */
  shared?: boolean;
  /** ms between short polls. Default 1000. */
  pollInterval?: number;
  /** ms of silence after which a WebSocket is pinged (after half) and a stream or iframe is dropped; 0 disables. Default 45000. */
  idleTimeout?: number;
  /** Sent as `Authorization: Bearer …` on HTTP publish. */
  apiKey?: string | null;
  /** Random source for the backoff jitter (tests). Default Math.random. */
  random?: () => number;
}

/** A message as `onMessage` receives it. */
export interface TidingsMessage {
  channel: string;
  /** The channel log's epoch: 12 hex digits. */
  epoch: string;
  /** Position in the epoch: 1, 2, 3, … */
  offset: number;
  /** Event name; `message` when the publisher gave none. */
  event: string;
  /** Text, or the bytes of a binary message. */
  data: string | Uint8Array;
  /** Publish time, ms since the Unix epoch. */
  time: number;
  binary: boolean;
  /** This message's cursor entry: `channel~epoch~offset`. */
  cursor: string;
}

/** A reset notice: the channel continues from this position; messages before it are gone. */
export interface TidingsReset {
  type: 'reset';
  channel: string;
  epoch: string;
  offset: number;
  reason: 'expired' | 'epoch' | 'deleted' | string;
}

/** An error with the protocol's error code (`forbidden`, `bad_channel`, `timeout`, `closed`, …). */
export interface TidingsError extends Error {
  code: string;
  /** HTTP status, or the WebSocket close code. */
  status?: number;
  /** The transport the error came from, for connection errors. */
  transport?: TransportName;
}

export interface SubscribeOptions {
  /** A cursor to resume from (entries for other channels are ignored). */
  since?: string;
  onMessage?: (message: TidingsMessage) => void;
  onReset?: (reset: TidingsReset) => void;
  onError?: (error: TidingsError) => void;
}

export interface PublishOptions {
  /** Event name, `[A-Za-z0-9_.:-]{1,64}`. */
  event?: string;
}

export interface PublishResult {
  channel: string;
  epoch: string;
  offset: number;
  cursor: string;
}

export interface StatusEvent {
  state: ConnectionState;
  transport: TransportName | null;
}

export declare class Subscription {
  readonly client: Tidings;
  readonly channels: string[];
  readonly options: SubscribeOptions;
  /** Cursor of this subscription's channels; store it and pass it back as `since`. */
  readonly cursor: string;
  unsubscribe(): void;
}

export declare class Tidings {
  /** @param baseUrl the server, e.g. "https://push.example.com" (default: the page's origin). */
  constructor(baseUrl?: string, options?: TidingsOptions);
  static readonly version: string;
  readonly options: Required<Omit<TidingsOptions, 'backoff' | 'random'>> & { backoff: { base: number; max: number }; random?: () => number };
  /** The base URL without a trailing slash. */
  readonly url: string;
  readonly state: ConnectionState;
  /** The transport in use or being tried; in a shared follower tab, the leader's. */
  readonly transport: TransportName | null;
  /** Cursor of every channel this client follows. */
  readonly cursor: string;
  subscribe(channels: string | string[], options?: SubscribeOptions): Subscription;
  publish(channel: string, data: string | ArrayBuffer | ArrayBufferView | unknown, options?: PublishOptions): Promise<PublishResult>;
  on(type: 'status', listener: (status: StatusEvent) => void): () => void;
  on(type: 'error', listener: (error: TidingsError) => void): () => void;
  off(type: 'status' | 'error', listener: (...args: any[]) => void): void;
  close(): void;
}

export default Tidings;

type TidingsClass = typeof Tidings;

declare global {
  // Defined by a classic <script src="/tidings.js">.
  // eslint-disable-next-line no-var
  var Tidings: TidingsClass;
}
