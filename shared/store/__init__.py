"""The SQL store: engines and transaction scopes, prepared statements, models, migrations. Imports
nothing of Flowbin's but config, errors and states."""
