/**
 * The whole BrokerGateway flow against a sandbox gateway: list providers, start an authorization,
 * approve it through the wallet simulator's `approve=<username>` shortcut, exchange the code, read the
 * user's info, watch its connections while revoking the new one (WatchConnections reports REVOKED),
 * then replay the exchange to show how a failed call's google.rpc.ErrorInfo reason is
 * read. Every call carries a deadline.
 *
 *   npm run build && BROKER_GATEWAY_ADDRESS=127.0.0.1:50051 \
 *     BROKER_GATEWAY_REDIRECT_URI=http://127.0.0.1:8765/callback npm run example
 *
 * Against a gateway with TLS and callers (`broker-gateway sandbox --secure` writes both values to its
 * sandbox.json as ca_file and api_key), set BROKER_GATEWAY_CA_FILE to the CA certificate that signed the
 * gateway's certificate and BROKER_GATEWAY_API_KEY to the caller's key: the example then connects over
 * TLS and sends `authorization: Bearer <key>` with every call. Without them it uses plaintext.
 */
import { Code, ConnectError } from "@connectrpc/connect";

import {
  apiKeyInterceptor,
  type BrokerGatewayClient,
  ConnectionEventType,
  ConnectionStatus,
  createBrokerGatewayClient,
  errorInfo,
  tlsTransportOptions,
} from "../src/index.js";

/** The deadline of each gateway call; the gateway derives its upstream timeouts from it. */
const timeoutMs = 10_000;

const address = process.env.BROKER_GATEWAY_ADDRESS || "127.0.0.1:50051";
const redirectUri = process.env.BROKER_GATEWAY_REDIRECT_URI || "http://127.0.0.1:8765/callback";
const username = process.env.BROKER_GATEWAY_USERNAME || "alice";
const caFile = process.env.BROKER_GATEWAY_CA_FILE || undefined;
const apiKey = process.env.BROKER_GATEWAY_API_KEY || undefined;

/** TLS when given a CA file, the API key on every call when given one (the key needs TLS). */
function connect(): BrokerGatewayClient {
  const interceptors = apiKey === undefined ? [] : [apiKeyInterceptor(apiKey)];
  if (caFile === undefined) {
    return createBrokerGatewayClient(`http://${address}`, { interceptors });
  }
  return createBrokerGatewayClient(`https://${address}`, { ...tlsTransportOptions({ caFile }), interceptors });
}

/** Request the authorization URL with approve=<username>, without following the redirect. */
async function approve(authorizationUrl: string, user: string): Promise<URLSearchParams> {
  const response = await fetch(`${authorizationUrl}&approve=${encodeURIComponent(user)}`, {
    redirect: "manual",
    signal: AbortSignal.timeout(timeoutMs),
  });
  const location = response.headers.get("location");
  if (response.status !== 302 || location === null) {
    throw new Error(`expected a 302 from the simulator, got ${response.status}`);
  }
  return new URL(location).searchParams;
}

/**
 * Watch the wallet's connections, revoke `connectionId` and wait for its REVOKED event. The stream
 * opens with a HEARTBEAT: once it has arrived, every later change is delivered. A real watcher keeps
 * the last cursor it received and resumes from it (`after`).
 */
async function watchRevoke(client: BrokerGatewayClient, connectionId: string): Promise<void> {
  const stopWatching = new AbortController();
  const stream = client
    .watchConnections({ provider: "wallet" }, { signal: stopWatching.signal, timeoutMs })
    [Symbol.asyncIterator]();
  try {
    await stream.next();
    await client.revoke({ connectionId }, { timeoutMs });
    for (;;) {
      const { value, done } = await stream.next();
      if (done) {
        throw new Error("the watch ended before the REVOKED event");
      }
      const event = value.event;
      if (event?.type === ConnectionEventType.REVOKED && event.connection?.connectionId === connectionId) {
        console.log(`watch_event: ${ConnectionEventType[event.type]}`);
        console.log(`watch_connection_id: ${event.connection.connectionId}`);
        console.log(`watch_cursor: ${event.cursor}`);
        return;
      }
    }
  } finally {
    stopWatching.abort();
  }
}

async function main(): Promise<void> {
  const client = connect();

  const { providers } = await client.listProviders({}, { timeoutMs });
  for (const provider of providers) {
    console.log(`provider: ${provider.id} (${provider.type})`);
  }

  const start = await client.authorize(
    { provider: "wallet", redirectUri, scopes: ["profile", "balance"] },
    { timeoutMs },
  );

  // A person would open the URL and press Authorize; the simulator's shortcut approves at once and
  // redirects to the callback with the code and state.
  const callback = await approve(start.authorizationUrl, username);
  const exchange = {
    state: callback.get("state") ?? "",
    code: callback.get("code") ?? "",
    iss: callback.get("iss") ?? "",
  };
  const { connection } = await client.exchange(exchange, { timeoutMs });
  if (connection === undefined) {
    throw new Error("Exchange returned no connection");
  }
  console.log(`connection_id: ${connection.connectionId}`);
  console.log(`status: ${ConnectionStatus[connection.status]}`);

  const { userInfo } = await client.getUserInfo({ connectionId: connection.connectionId }, { timeoutMs });
  console.log(`subject: ${userInfo?.subject}`);
  console.log(`username: ${userInfo?.username}`);

  await watchRevoke(client, connection.connectionId);

  // A state works once: replaying the exchange fails with FAILED_PRECONDITION and an ErrorInfo whose
  // reason is AUTHZ_TRANSACTION_INVALID.
  try {
    await client.exchange(exchange, { timeoutMs });
  } catch (error) {
    const info = errorInfo(error);
    if (info === undefined) {
      throw new Error(`the replayed Exchange failed without an ErrorInfo: ${error}`);
    }
    console.log(`error_code: ${Code[ConnectError.from(error).code]}`);
    console.log(`error_reason: ${info.reason}`);
    console.log(`error_domain: ${info.domain}`);
    return;
  }
  throw new Error("the replayed Exchange succeeded");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
