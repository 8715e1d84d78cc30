// Package brokergateway is the small hand-written part of the Go client for BrokerGateway:
// connection helpers (plaintext for the sandbox, TLS or mutual TLS, and the caller's API key) and the
// reader for the google.rpc.ErrorInfo every failed call carries. The
// stubs themselves are generated into
// github.com/brokergateway/broker-gateway/clients/go/gen/broker_gateway/v1 (never edit them; run
// `make generate` at the repository root).
package brokergateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
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

// NewInsecure connects to a gateway over plaintext gRPC, as the plain sandbox serves it (address is
// HOST:PORT). Anything beyond loopback should use NewTLS or NewMutualTLS.
func NewInsecure(address string, options ...grpc.DialOption) (*Client, error) {
	return newClient(address, insecure.NewCredentials(), options)
}

// NewTLS connects to a gateway over TLS, verifying its certificate against the PEM CA certificates in
// caFile (`broker-gateway sandbox --secure` writes its CA to <data-dir>/ca.crt). Add WithAPIKey to
// the options to authenticate as a caller.
func NewTLS(address, caFile string, options ...grpc.DialOption) (*Client, error) {
	transport, err := credentials.NewClientTLSFromFile(caFile, "")
	if err != nil {
		return nil, err
	}
	return newClient(address, transport, options)
}

// NewMutualTLS is NewTLS presenting the client certificate in certFile (PEM, with its chain) and
// keyFile: the gateway then knows the caller by its certificate ([[callers]] tls_subject).
func NewMutualTLS(address, caFile, certFile, keyFile string, options ...grpc.DialOption) (*Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	certificate, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	transport := credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{certificate}, MinVersion: tls.VersionTLS12})
	return newClient(address, transport, options)
}

func newClient(address string, transport credentials.TransportCredentials, options []grpc.DialOption) (*Client, error) {
	options = append([]grpc.DialOption{grpc.WithTransportCredentials(transport)}, options...)
	conn, err := grpc.NewClient(address, options...)
	if err != nil {
		return nil, err
	}
	return &Client{BrokerGatewayClient: gatewayv1.NewBrokerGatewayClient(conn), conn: conn}, nil
}

// WithAPIKey sends key as `authorization: Bearer <key>` with every call (`broker-gateway
// new-caller-key` makes one). grpc-go refuses to send it over a connection without TLS, so a key
// never travels in plaintext.
func WithAPIKey(key string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(apiKey(key))
}

type apiKey string

func (key apiKey) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(key)}, nil
}

func (apiKey) RequireTransportSecurity() bool {
	return true
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
