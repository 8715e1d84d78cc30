"""Built-in ``bybit`` provider (Bybit's OAuth broker flow, OpenAPI keys, signed V5 broker operations)
and its sandbox simulator. ``docs/providers/bybit.md`` documents the settings and the choices made
where Bybit's documentation is silent."""
