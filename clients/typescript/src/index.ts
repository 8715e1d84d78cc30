/**
 * The TypeScript client for BrokerGateway: the stubs generated from protos/ (under ./gen, never edited
 * by hand; run `make generate` at the repository root), a client factory over Connect's gRPC transport
 * for Node.js, the TLS options and API-key interceptor a gateway with callers needs, and the reader for
 * the google.rpc.ErrorInfo every failed call carries.
 */
import { readFileSync } from "node:fs";

import { type Client, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";

import { BrokerGateway } from "./gen/broker_gateway/v1/broker_gateway_service_pb.js";
import { type ErrorInfo, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export * from "./gen/broker_gateway/v1/broker_gateway_service_pb.js";
export * from "./gen/broker_gateway/v1/connection_event_pb.js";
export * from "./gen/broker_gateway/v1/connection_pb.js";
export * from "./gen/broker_gateway/v1/error_reason_pb.js";
export * from "./gen/broker_gateway/v1/provider_pb.js";
export { type ErrorInfo, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** The google.rpc.ErrorInfo domain of every BrokerGateway error. */
export const ERROR_DOMAIN = "broker-gateway";

/** A typed BrokerGateway client: one method per RPC, each taking call options such as `timeoutMs`. */
export type BrokerGatewayClient = Client<typeof BrokerGateway>;

/**
 * Create a client speaking gRPC (HTTP/2) to a gateway.
 *
 * @param baseUrl the gateway's URL: `http://127.0.0.1:50051` for the plain sandbox, `https://...` for TLS.
 * @param options further transport options: `tlsTransportOptions(...)` for TLS, `interceptors:
 *   [apiKeyInterceptor(key)]` to authenticate as a caller, a default timeout, ...
 */
export function createBrokerGatewayClient(
  baseUrl: string,
  options: Partial<GrpcTransportOptions> = {},
): BrokerGatewayClient {
  return createClient(BrokerGateway, createGrpcTransport({ ...options, baseUrl }));
}

/** The files a TLS connection to a gateway uses, each PEM. */
export interface TlsFiles {
  /** The CA certificate(s) that signed the gateway's certificate (`sandbox --secure`: `<data-dir>/ca.crt`). */
  caFile: string;
  /** For mutual TLS: the client certificate (with its chain) the gateway knows the caller by ... */
  certFile?: string;
  /** ... and its private key. */
  keyFile?: string;
}

/**
 * Transport options that verify the gateway's certificate against `caFile` and, for mutual TLS, present
 * a client certificate. Use them with an `https://` base URL.
 */
export function tlsTransportOptions({ caFile, certFile, keyFile }: TlsFiles): Partial<GrpcTransportOptions> {
  return {
    nodeOptions: {
      ca: readFileSync(caFile),
      ...(certFile === undefined ? {} : { cert: readFileSync(certFile) }),
      ...(keyFile === undefined ? {} : { key: readFileSync(keyFile) }),
    },
  };
}

/**
 * An interceptor sending `authorization: Bearer <apiKey>` with every call (`broker-gateway
 * new-caller-key` makes a key). It refuses to send the key to an `http://` URL, so a key never travels
 * in plaintext.
 */
export function apiKeyInterceptor(apiKey: string): Interceptor {
  const authorization = `Bearer ${apiKey}`;
  return (next) => async (request) => {
    if (!request.url.startsWith("https:")) {
      throw new Error(`refusing to send the API key without TLS to ${request.url}`);
    }
    request.header.set("authorization", authorization);
    return next(request);
  };
}

/**
 * The google.rpc.ErrorInfo of a failed BrokerGateway call, or undefined when the error carries none
 * (a transport failure before the gateway answered, for instance). Its `reason` is the bare name of an
 * ErrorReason value: "AUTHZ_TRANSACTION_INVALID", "REAUTH_REQUIRED", ...
 */
export function errorInfo(error: unknown): ErrorInfo | undefined {
  return ConnectError.from(error)
    .findDetails(ErrorInfoSchema)
    .find((info) => info.domain === ERROR_DOMAIN);
}
