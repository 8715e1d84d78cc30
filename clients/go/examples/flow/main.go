// Command flow runs the whole BrokerGateway flow against a sandbox gateway: it lists providers,
// starts an authorization, approves it through the wallet simulator's `approve=<username>` shortcut,
// exchanges the code, reads the user's info, watches its connections while it revokes the new one
// (WatchConnections reports REVOKED), and then replays the exchange to show how a failed
// call's google.rpc.ErrorInfo reason is read. Every call carries a deadline.
//
//	BROKER_GATEWAY_ADDRESS=127.0.0.1:50051 \
//	BROKER_GATEWAY_REDIRECT_URI=http://127.0.0.1:8765/callback \
//	go run ./examples/flow
//
// Against a gateway with TLS and callers (`broker-gateway sandbox --secure` writes both values to its
// sandbox.json as ca_file and api_key), set BROKER_GATEWAY_CA_FILE to the CA certificate that signed
// the gateway's certificate and BROKER_GATEWAY_API_KEY to the caller's key: the example then connects
// over TLS and sends `authorization: Bearer <key>` with every call. Without them it uses plaintext.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/brokergateway/broker-gateway/clients/go/brokergateway"
	gatewayv1 "github.com/brokergateway/broker-gateway/clients/go/gen/broker_gateway/v1"
)

// callTimeout is the deadline of each gateway call; the gateway derives its upstream timeouts from it.
const callTimeout = 10 * time.Second

func main() {
	address := env("BROKER_GATEWAY_ADDRESS", "127.0.0.1:50051")
	redirectURI := env("BROKER_GATEWAY_REDIRECT_URI", "http://127.0.0.1:8765/callback")
	username := env("BROKER_GATEWAY_USERNAME", "alice")

	client, err := connect(address, os.Getenv("BROKER_GATEWAY_CA_FILE"), os.Getenv("BROKER_GATEWAY_API_KEY"))
	if err != nil {
		log.Fatalf("connect: %v", err)
	}
	defer client.Close()

	providers, err := call(client.ListProviders, &gatewayv1.ListProvidersRequest{})
	if err != nil {
		log.Fatalf("ListProviders: %v", err)
	}
	for _, p := range providers.GetProviders() {
		fmt.Printf("provider: %s (%s)\n", p.GetId(), p.GetType())
	}

	start, err := call(client.Authorize, &gatewayv1.AuthorizeRequest{
		Provider:    "wallet",
		RedirectUri: redirectURI,
		Scopes:      []string{"profile", "balance"},
	})
	if err != nil {
		log.Fatalf("Authorize: %v", err)
	}

	// A person would open the URL and press Authorize; the simulator's shortcut approves at once and
	// redirects to the callback with the code and state.
	callback, err := approve(start.GetAuthorizationUrl(), username)
	if err != nil {
		log.Fatalf("approve: %v", err)
	}
	exchange := &gatewayv1.ExchangeRequest{State: callback.Get("state"), Code: callback.Get("code"), Iss: callback.Get("iss")}
	exchanged, err := call(client.Exchange, exchange)
	if err != nil {
		log.Fatalf("Exchange: %v", err)
	}
	connection := exchanged.GetConnection()
	fmt.Printf("connection_id: %s\n", connection.GetConnectionId())
	fmt.Printf("status: %s\n", connection.GetStatus())

	info, err := call(client.GetUserInfo, &gatewayv1.GetUserInfoRequest{ConnectionId: connection.GetConnectionId()})
	if err != nil {
		log.Fatalf("GetUserInfo: %v", err)
	}
	fmt.Printf("subject: %s\n", info.GetUserInfo().GetSubject())
	fmt.Printf("username: %s\n", info.GetUserInfo().GetUsername())

	if err := watchRevoke(client, connection.GetConnectionId()); err != nil {
		log.Fatalf("WatchConnections: %v", err)
	}

	// A state works once: replaying the exchange fails with FAILED_PRECONDITION and an ErrorInfo
	// whose reason is AUTHZ_TRANSACTION_INVALID.
	_, err = call(client.Exchange, exchange)
	if err == nil {
		log.Fatal("the replayed Exchange succeeded")
	}
	errorInfo := brokergateway.ErrorInfo(err)
	if errorInfo == nil {
		log.Fatalf("the replayed Exchange failed without an ErrorInfo: %v", err)
	}
	fmt.Printf("error_code: %s\n", status.Code(err))
	fmt.Printf("error_reason: %s\n", errorInfo.GetReason())
	fmt.Printf("error_domain: %s\n", errorInfo.GetDomain())
}

// watchRevoke watches the wallet's connections, revokes connectionID and waits for its REVOKED event.
// The stream opens with a HEARTBEAT: once it has arrived, every later change is delivered. A real
// watcher keeps the last cursor it received and resumes from it (WatchConnectionsRequest.After).
func watchRevoke(client *brokergateway.Client, connectionID string) error {
	ctx, stopWatching := context.WithTimeout(context.Background(), callTimeout)
	defer stopWatching()
	stream, err := client.WatchConnections(ctx, &gatewayv1.WatchConnectionsRequest{Provider: "wallet"})
	if err != nil {
		return err
	}
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if _, err := call(client.Revoke, &gatewayv1.RevokeRequest{ConnectionId: connectionID}); err != nil {
		return err
	}
	for {
		response, err := stream.Recv()
		if err != nil {
			return err
		}
		event := response.GetEvent()
		if event.GetType() == gatewayv1.ConnectionEventType_CONNECTION_EVENT_TYPE_REVOKED &&
			event.GetConnection().GetConnectionId() == connectionID {
			fmt.Printf("watch_event: %s\n", event.GetType())
			fmt.Printf("watch_connection_id: %s\n", event.GetConnection().GetConnectionId())
			fmt.Printf("watch_cursor: %s\n", event.GetCursor())
			return nil
		}
	}
}

// connect uses TLS when given a CA file and sends the API key when given one (the key needs TLS).
func connect(address, caFile, key string) (*brokergateway.Client, error) {
	var options []grpc.DialOption
	if key != "" {
		options = append(options, brokergateway.WithAPIKey(key))
	}
	if caFile != "" {
		return brokergateway.NewTLS(address, caFile, options...)
	}
	return brokergateway.NewInsecure(address, options...)
}

// call runs one RPC with its own deadline.
func call[Req, Resp any](rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), request Req) (Resp, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return rpc(ctx, request)
}

// approve requests authorizationURL with the simulator's approve=<username> shortcut, without
// following the redirect, and returns the callback's query parameters.
func approve(authorizationURL, username string) (url.Values, error) {
	httpClient := &http.Client{
		Timeout:       callTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	response, err := httpClient.Get(authorizationURL + "&approve=" + url.QueryEscape(username))
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("expected a 302 from the simulator, got %s", response.Status)
	}
	location, err := url.Parse(response.Header.Get("Location"))
	if err != nil {
		return nil, err
	}
	return location.Query(), nil
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
