// Package brokergateway is the small hand-written part of the Go client for BrokerGateway: a
// connection helper and the reader for the google.rpc.ErrorInfo every failed call carries. The
// stubs themselves are generated into
// github.com/brokergateway/broker-gateway/clients/go/gen/broker_gateway/v1 (never edit them; run
// `make generate` at the repository root).
package brokergateway

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/brokergateway/broker-gateway/clients/go/gen/broker_gateway/v1"
)

// Domain is the google.rpc.ErrorInfo domain of every BrokerGateway error.
const Domain = "broker-gateway"

// Client bundles the generated BrokerGateway client with the connection it runs on.
type Client struct {
	gatewayv1.BrokerGatewayClient
	conn *grpc.ClientConn
}

// NewInsecure connects to a gateway over plaintext gRPC, as the sandbox serves it (address is
// HOST:PORT). For a TLS gateway, dial with grpc.NewClient and your credentials and wrap the
// connection with gatewayv1.NewBrokerGatewayClient instead.
func NewInsecure(address string, options ...grpc.DialOption) (*Client, error) {
	options = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, options...)
	conn, err := grpc.NewClient(address, options...)
	if err != nil {
		return nil, err
	}
	return &Client{BrokerGatewayClient: gatewayv1.NewBrokerGatewayClient(conn), conn: conn}, nil
}

// Close closes the underlying connection.
func (c *Client) Close() error {
	return c.conn.Close()
}

// ErrorInfo returns the google.rpc.ErrorInfo of a failed BrokerGateway call, or nil when err is not
// a gRPC status carrying one (a transport failure before the gateway answered, for instance). Its
// Reason is the bare name of an ErrorReason value: "AUTHZ_TRANSACTION_INVALID", "REAUTH_REQUIRED", ...
func ErrorInfo(err error) *errdetails.ErrorInfo {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return info
		}
	}
	return nil
}

// Reason returns ErrorInfo(err).GetReason(): "" when err carries no BrokerGateway ErrorInfo.
func Reason(err error) string {
	return ErrorInfo(err).GetReason()
}
