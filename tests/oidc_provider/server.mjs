// Test-only OAuth 2.0 / OpenID Connect authorization server for the BrokerGateway test suite.
//
// A real oidc-provider instance on loopback, configured as docs/design/sandbox.md
// describes: PKCE always required, refresh tokens rotated on every use (with reuse
// detection revoking the whole grant), `iss` in the authorization response, devInteractions
// so login/consent can be completed with plain HTTP, revocation and userinfo.
//
// Environment:
//   PORT                 listen port on 127.0.0.1 (required; the harness picks a free one)
//   CLIENT_SECRET_BASIC  secret of client `gateway-basic` (client_secret_basic)
//   CLIENT_SECRET_POST   secret of client `gateway-post`  (client_secret_post)
//   REDIRECT_URIS        comma-separated redirect URIs for both clients
//                        (default http://127.0.0.1:8765/callback)
//   ACCESS_TOKEN_TTL     access token lifetime in seconds (default 3600)
//
// Test-only route: GET /_test/events returns the recorded events as JSON;
// GET /_test/events?reset=1 returns them and clears the buffer. Nothing recorded there ever
// contains a token, code, verifier or secret value.
//
// Never use this configuration outside tests: devInteractions accepts any login and password.

import Provider from 'oidc-provider';

function required(name) {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`oidc test AS: environment variable ${name} is required\n`);
    process.exit(2);
  }
  return value;
}

const port = Number.parseInt(required('PORT'), 10);
const issuer = `http://127.0.0.1:${port}`;
const redirectUris = (process.env.REDIRECT_URIS || 'http://127.0.0.1:8765/callback')
  .split(',')
  .map((uri) => uri.trim())
  .filter(Boolean);
const accessTokenTtl = Number.parseInt(process.env.ACCESS_TOKEN_TTL || '3600', 10);

const clientDefaults = {
  redirect_uris: redirectUris,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};

const configuration = {
  clients: [
    {
      ...clientDefaults,
      client_id: 'gateway-basic',
      client_secret: required('CLIENT_SECRET_BASIC'),
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      ...clientDefaults,
      client_id: 'gateway-post',
      client_secret: required('CLIENT_SECRET_POST'),
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  // The default forces PKCE only for public clients; the gateway must always send it.
  pkce: { required: () => true },
  // Rotate on every refresh, like OKX (the default rotates confidential clients at >= 70% TTL).
  rotateRefreshToken: true,
  // The default also requires offline_access, which is dropped unless prompt includes consent.
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    RefreshToken: 259200,
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
  scopes: ['openid', 'offline_access', 'read', 'trade', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // Any login name becomes the subject, so each test can use a fresh user (a fresh grant).
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: `${sub}@example.test`,
          email_verified: true,
          name: sub,
        };
      },
    };
  },
  // A fixed test key avoids the dev-cookie-key warning; it protects nothing real.
  cookies: { keys: ['broker-gateway-test-only-cookie-key'] },
};

const provider = new Provider(issuer, configuration);

// ---------------------------------------------------------------------------------------------
// Event recording. Only identifiers that are not credentials are stored: kind, timestamps,
// client id, account id (the subject), grant id, error code and the library's error detail.
// Never a jti (for opaque tokens the jti *is* the token value), code, verifier or secret.

const events = [];
const grantAccounts = new Map(); // grantId -> accountId, learned from token events

function record(kind, fields) {
  const entry = { kind, at: Date.now() / 1000 };
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null) entry[key] = value;
  }
  events.push(entry);
}

function entityAccount(ctx) {
  const entities = ctx?.oidc?.entities ?? {};
  return entities.Account?.accountId
    ?? entities.RefreshToken?.accountId
    ?? entities.AccessToken?.accountId
    ?? entities.Grant?.accountId;
}

function tokenEvent(kind) {
  return (token) => {
    if (token.grantId && token.accountId) grantAccounts.set(token.grantId, token.accountId);
    record(kind, {
      client_id: token.clientId,
      account_id: token.accountId,
      grant_id: token.grantId,
      rotations: token.rotations,
    });
  };
}

provider.on('refresh_token.saved', tokenEvent('refresh_token.saved'));
provider.on('refresh_token.consumed', tokenEvent('refresh_token.consumed'));
provider.on('grant.revoked', (ctx, grantId) => {
  record('grant.revoked', {
    client_id: ctx?.oidc?.client?.clientId,
    account_id: grantAccounts.get(grantId) ?? entityAccount(ctx),
    grant_id: grantId,
  });
});
provider.on('grant.error', (ctx, err) => {
  record('grant.error', {
    client_id: ctx?.oidc?.client?.clientId,
    account_id: entityAccount(ctx),
    grant_type: ctx?.oidc?.params?.grant_type ?? ctx?.oidc?.body?.grant_type,
    error: err?.error,
    error_detail: err?.error_detail,
  });
});
provider.on('server_error', (ctx, err) => {
  // The message of an unexpected exception is for debugging the test AS itself.
  record('server_error', {
    path: ctx?.path,
    error: err?.error ?? 'server_error',
    message: err?.message,
  });
});

const recordedPaths = new Map([
  [provider.pathFor('token'), 'token'],
  [provider.pathFor('revocation'), 'revocation'],
  [provider.pathFor('userinfo'), 'userinfo'],
]);

provider.use(async (ctx, next) => {
  if (ctx.path === '/_test/events') {
    if (ctx.method !== 'GET') {
      ctx.status = 405;
      return;
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.body = events.slice();
    if (ctx.query.reset === '1') {
      events.length = 0;
    }
    return;
  }

  const endpoint = recordedPaths.get(ctx.path);
  if (!endpoint) {
    await next();
    return;
  }
  try {
    await next();
  } finally {
    // Read after the route ran, so the body is parsed and the client is known. The body and
    // query are never copied wholesale: they carry tokens, codes, verifiers and secrets.
    const oidc = ctx.oidc;
    record(`request.${endpoint}`, {
      method: ctx.method,
      path: ctx.path,
      grant_type: endpoint === 'token' ? (oidc?.params?.grant_type ?? oidc?.body?.grant_type) : undefined,
      client_id: oidc?.client?.clientId,
      status: ctx.status,
      error: ctx.status >= 400 && ctx.body && typeof ctx.body === 'object' ? ctx.body.error : undefined,
    });
  }
});

// ---------------------------------------------------------------------------------------------

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});

server.on('error', (err) => {
  process.stderr.write(`oidc test AS: ${err.message}\n`);
  process.exit(1);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  // Keep-alive sockets must not hold the process open.
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
