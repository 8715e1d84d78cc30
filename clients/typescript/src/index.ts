/**
 * The TypeScript client for BrokerGateway: the stubs generated from protos/ (under ./gen, never edited
 * by hand; run `make generate` at the repository root), a client factory over Connect's gRPC transport
 * for Node.js, and the reader for the google.rpc.ErrorInfo every failed call carries.
 */
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, type GrpcTransportOptions } from "@connectrpc/connect-node";

import { BrokerGateway } from "./gen/broker_gateway/v1/broker_gateway_service_pb.js";
import { type ErrorInfo, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export * from "./gen/broker_gateway/v1/broker_gateway_service_pb.js";
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
 * @param baseUrl the gateway's URL: `http://127.0.0.1:50051` for the sandbox, `https://...` for TLS.
 * @param options further transport options (interceptors, TLS settings, default timeout, ...).
 */
export function createBrokerGatewayClient(
  baseUrl: string,
  options: Partial<GrpcTransportOptions> = {},
): BrokerGatewayClient {
  return createClient(BrokerGateway, createGrpcTransport({ ...options, baseUrl }));
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
