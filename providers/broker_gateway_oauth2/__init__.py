"""Built-in generic OAuth 2.0 / OpenID Connect provider (``generic-oauth2``) and the wallet sandbox simulator."""
